-- Mailing list posts through Mailman 3 (org.fedoraproject.*.mailman.*).
-- The post's headers are under msg.msg.
local u = util
local F = u.format

local P = processor{name = "Mailman", entry = "mailman", obj = "Mailing List Messages",
  icon = "https://apps.fedoraproject.org/img/icons/hyperkitty.png"}

-- The address of a From header: "Name <addr>", "addr (Name)" or "addr".
local function address(from)
  from = u.str(from)
  local inside = from:match("<([^<>]*)>%s*$")
  if inside then return u.strip(inside) end
  from = from:gsub("%b()", "")
  return u.strip(from)
end

local function post(msg) return u.req(u.req(msg.msg.msg, "msg")) end

local function sender(msg)
  local email = address(u.req(post(msg).from))
  return u.email2fas(email), email
end

function P.subtitle(msg)
  local m = msg.msg
  if not u.contains(msg.topic, "receive") then return nil end
  local lst = u.req(m.mlist.list_name)
  local d = post(msg)
  local subject = u.replace(u.str(u.req(d.subject)), "\n", " ")
  local user = sender(msg)
  if not u.truthy(user) then user = "someone" end
  local v = {lst = lst, user = user, subject = subject}
  if u.truthy(d.references) or u.truthy(d["in-reply-to"]) then
    return F("On the {lst} list, {user} replied to '{subject}'", v)
  end
  return F("{user} wrote '{subject}' to the {lst} list", v)
end

function P.secondary_icon(msg)
  local user, email = sender(msg)
  if u.contains(user, "@") then return u.avatar_url_from_email(email) end
  return u.avatar_url_from_openid(user)
end

function P.link(msg)
  local at = post(msg)["archived-at"]
  if not u.truthy(at) then return nil end
  at = u.str(at)
  if u.startswith(at, "<") then at = at:sub(2) end
  if u.endswith(at, ">") then at = at:sub(1, -2) end
  if u.startswith(at, "http") then return at end
  if at == "" then return nil end
  return "https://lists.fedoraproject.org/archives" .. at
end

function P.usernames(msg)
  local user = sender(msg)
  if u.truthy(user) and not u.contains(user, "@") then return {user} end
  return {}
end

-- <list>/[<ref>/<ref>/]<message-id>/message, without the angle brackets.
function P.objects(msg)
  local d = post(msg)
  local refs = d.references
  if not u.truthy(refs) then refs = d["in-reply-to"] end
  local tokens = {u.str(u.req(msg.msg.mlist.list_name))}
  if u.truthy(refs) then
    local r = u.collect(u.split(u.str(refs)), nil, function(x) return x:sub(2, -2) end)
    if #r > 0 then tokens[#tokens + 1] = table.concat(r, "/") end
  end
  tokens[#tokens + 1] = u.str(u.req(d["message-id"])):sub(2, -2)
  tokens[#tokens + 1] = "message"
  return {table.concat(tokens, "/")}
end
