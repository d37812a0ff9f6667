-- The Fedora account system (org.fedoraproject.*.fas.*).
local u = util
local F = u.format

local P = processor{name = "FAS", entry = "fas", obj = "Account Changes",
  icon = "https://admin.fedoraproject.org/accounts/static/theme/fas/images/account.png"}

local function has(t, s) return u.contains(t, s) end

-- m[key] is a name, or a dict with username or name.
local function name_of(m, key)
  local v = m[key]
  if v == nil then error("no " .. key, 2) end
  if type(v) == "table" then
    if v.username ~= nil then return v.username end
    if v.name == nil then error("no name", 2) end
    return v.name
  end
  return v
end

local member_tmpls = {
  apply = "{agent} applied for {user}'s membership in the {group} group",
  sponsor = "{agent} sponsored {user}'s membership in the {group} group",
  remove = "{agent} removed {user} from the {group} group",
}

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "fas.user.create") then
    return F("New FAS account:  '{user}'  (created by '{agent}')", {agent = name_of(m, "agent"), user = name_of(m, "user")})
  elseif has(t, "fas.user.update") then
    return F("{agent} edited the following fields of {user}'s FAS profile:  {fields}",
      {agent = name_of(m, "agent"), user = name_of(m, "user"), fields = table.concat(m.fields, ", ")})
  elseif has(t, "fas.group.member.") then
    local w = u.words(t)
    local tmpl = member_tmpls[w[#w]] or "<unhandled action in fedmsg.meta.fas>"
    return F(tmpl, {agent = name_of(m, "agent"), user = name_of(m, "user"), group = name_of(m, "group")})
  elseif has(t, "fas.group.create") then
    return F("{agent} created new FAS group {group}", {agent = name_of(m, "agent"), group = name_of(m, "group")})
  elseif has(t, "fas.group.update") then
    return F("{agent} edited the following fields of the {group} FAS group:  {fields}",
      {agent = name_of(m, "agent"), group = name_of(m, "group"), fields = table.concat(m.fields, ", ")})
  elseif has(t, "fas.role.update") then
    local v = {agent = name_of(m, "agent"), user = name_of(m, "user"), group = name_of(m, "group")}
    local tmpl = "{agent} changed {user}'s role in the {group} group"
    if m.status ~= nil then
      v.status = name_of(m, "status")
      tmpl = tmpl .. " to {status}"
    end
    return F(tmpl, v)
  end
  return nil
end

function P.secondary_icon(msg) return u.avatar_url(name_of(msg.msg, "agent")) end

function P.usernames(msg)
  local m = msg.msg
  local out = {}
  local ok, a = pcall(name_of, m, "agent")
  if ok then out[#out + 1] = a end
  local ok2, b = pcall(name_of, m, "user")
  if ok2 then out[#out + 1] = b end
  return out
end

function P.objects(msg)
  local m = msg.msg
  local out = {}
  if m.user ~= nil then out[#out + 1] = "users/" .. name_of(m, "user") end
  if m.group ~= nil then out[#out + 1] = "groups/" .. name_of(m, "group") end
  return out
end
