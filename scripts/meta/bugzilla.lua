-- Red Hat Bugzilla bugs on Fedora components (org.fedoraproject.*.bugzilla.*).
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "bugzilla", entry = "bugzilla", obj = "Bug Updates",
  icon = "https://apps.fedoraproject.org/img/icons/bugzilla.png"}

-- Components that are bugzilla workflows, not packages.
local not_packages = {["Package Review"] = true}

-- An e-mail address as an account name; the second value says whether
-- it is one (no "@" left).
local function to_fas(email)
  local user = u.email2fas(email)
  return user, not u.contains(user, "@")
end

local function actor(m)
  local comment, event = m.comment, m.event
  local email
  if u.truthy(comment) then email = comment.author
  elseif u.truthy(event) and u.truthy(event.who) then email = event.who
  else email = u.req(m.bug).creator end
  return to_fas(u.req(email))
end

local function quoted_series(fields)
  if #fields == 0 then return "nothing? (likely bugzilla sent us a buggy message)" end
  local q = u.collect(fields, nil, function(f) return "'" .. u.str(f) .. "'" end)
  if #q == 1 then return q[1] end
  if #q == 2 then return q[1] .. " and " .. q[2] end
  return table.concat(q, ", ", 1, #q - 1) .. ", and " .. q[#q]
end

function P.link(msg)
  local bug = u.req(msg.msg.bug)
  if u.truthy(bug.weburl) then return bug.weburl end
  return "https://bugzilla.redhat.com/show_bug.cgi?id=" .. u.str(u.req(bug.id))
end

function P.subtitle(msg)
  local m = msg.msg
  local user = actor(m)
  local bug = m.bug or {}
  local title = u.ellipsis(u.req(bug.summary), 40)
  local v = {user = user, idx = bug.id, title = title}
  local ev = m.event
  if has(msg.topic, "bug.new") or (u.req(ev).target == "bug" and ev.action == "create") then
    return F("{user} filed a new bug RHBZ#{idx} '{title}'", v)
  end
  if u.truthy(m.comment) then
    return F("{user} commented on RHBZ#{idx} '{title}'", v)
  elseif u.truthy(ev) then
    v.fields = quoted_series(u.collect(u.req(ev.changes), nil, function(d) return u.req(d.field_name) end))
    return F("{user} updated {fields} on RHBZ#{idx} '{title}'", v)
  end
  return F("{user} updated RHBZ#{idx} '{title}'", v)
end

function P.secondary_icon(msg)
  local user, is_fas = actor(msg.msg)
  if is_fas then return u.avatar_url(user) end
  return u.avatar_url_from_email(user)
end

local function emails(m)
  local bug = u.req(m.bug)
  local out = {}
  if u.truthy(m.comment) then out[#out + 1] = m.comment.author end
  if u.truthy(m.event) then out[#out + 1] = m.event.who end
  out[#out + 1] = bug.creator
  out[#out + 1] = bug.assigned_to
  for _, e in ipairs(u.req(bug.cc)) do out[#out + 1] = e end
  return u.collect(out, function(e)
    return u.truthy(e) and not u.endswith(e, "lists.fedoraproject.org")
  end)
end

function P.usernames(msg)
  local out = {}
  for _, e in ipairs(emails(msg.msg)) do
    local user, is_fas = to_fas(e)
    if is_fas then out[#out + 1] = user end
  end
  return out
end

function P.packages(msg)
  local c = u.req(u.req(msg.msg.bug).component)
  if not_packages[c] then return {} end
  return {c}
end

function P.objects(msg)
  local bug = u.req(msg.msg.bug)
  local product, component = u.req(bug.product), u.req(bug.component)
  if type(product) == "table" then product = u.req(product.name) end
  if type(component) == "table" then component = u.req(component.name) end
  return {u.str(product) .. "/" .. u.str(component) .. "/" .. u.str(u.req(bug.id))}
end
