-- Anitya, upstream release monitoring (org.release-monitoring.*.anitya.*).
local u = util
local F = u.format

local P = processor{name = "anitya", entry = "anitya", prefix = [[org\.release-monitoring\.(dev|stg|prod)]],
  obj = "Upstream Releases",
  icon = "https://apps.fedoraproject.org/packages/images/icons/package_128x128.png"}

local function has(t, s) return u.contains(t, s) end
local function req(v) if v == nil then error("missing field", 2) end return v end

-- The user behind the message: from message.agent (an OpenID, an e-mail
-- or a name), else the envelope's username, else "anitya".
local function get_user(msg)
  local agent = u.get(msg.msg, "message", "agent")
  if agent == nil then
    if msg.username ~= nil then return msg.username end
    return "anitya"
  end
  if has(agent, "id.fedoraproject.org") then
    local before = u.split(agent, ".id.fedoraproject.org", 1)[1]
    local parts = u.split(before, "//", 1)
    return parts[2] or ""
  elseif u.endswith(agent, "@fedoraproject.org") then
    return u.split(agent, "@fedoraproject.org")[1]
  elseif has(agent, "@") then
    return u.email2fas(agent)
  end
  return agent
end

function P.link(msg)
  local m = msg.msg
  if u.truthy(m.project) then
    return "https://release-monitoring.org/project/" .. u.str(m.project.id) .. "/"
  elseif u.endswith(msg.topic, "project.flag.set") then
    return "https://release-monitoring.org/"
  end
  return "https://release-monitoring.org/distros"
end

local function fedora_packages(list)
  local out = {}
  for _, p in ipairs(list or {}) do
    if p.distro == "Fedora" then out[#out + 1] = p.package_name end
  end
  return out
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local v = {user = get_user(msg)}
  local mm = m.message or {}
  if has(t, "project.map.new") then
    v.project, v.distro, v.new = m.project.name, m.distro.name, req(mm.new)
    return F('{user} mapped the name of "{project}" in {distro} to "{new}"', v)
  elseif has(t, "project.map.update") then
    v.project, v.distro, v.old, v.new = m.project.name, m.distro.name, req(mm.prev), req(mm.new)
    return F('{user} updated the name of "{project}" in "{distro}" from "{old}" to "{new}"', v)
  elseif has(t, "distro.add") then
    v.distro = m.distro.name
    return F('{user} added the distro named "{distro}" to anitya', v)
  elseif has(t, "distro.edit") then
    v.old, v.new = req(mm.old), req(mm.new)
    return F('{user} changed a distro name from "{old}" to "{new}"', v)
  elseif has(t, "project.add.tried") then
    v.project = m.project.name
    return F('{user} tried to add the project "{project}" to anitya (but it already exists there)', v)
  elseif has(t, "project.add") then
    v.project = m.project.name
    return F('{user} added the project "{project}" to anitya', v)
  elseif has(t, "project.edit") then
    v.project, v.fields = m.project.name, table.concat(mm.fields, ", ")
    return F('{user} edited the following fields of the "{project}" project: {fields}', v)
  elseif has(t, "project.remove") then
    v.project = m.project.name
    return F('{user} deleted the "{project}" project', v)
  elseif has(t, "project.map.remove") then
    v.project, v.distro = m.project.name, req(mm.distro)
    return F('{user} deleted the mapping of "{project}" project on "{distro}"', v)
  elseif has(t, "project.version.update") then
    v.project = m.project.name
    local message = m.message or m
    v.packages = u.list_to_series(fedora_packages(message.packages))
    local odd = message.odd_change or false
    v.old, v.new = message.old_version, message.upstream_version
    if v.new == nil then error("no upstream_version") end
    if u.truthy(v.old) and not u.truthy(odd) then
      return F('A new version of "{project}" has been detected:  "{new}" newer than "{old}", packaged as "{packages}"', v)
    end
    return F('A new version of "{project}" has been detected:  "{new}", packaged as "{packages}"', v)
  elseif has(t, "project.version.remove") then
    v.project, v.version = m.project.name, req(mm.version)
    return F('{user} deleted the version {version} of "{project}"', v)
  elseif has(t, "distro.remove") then
    v.project = m.distro.name
    return F('{user} deleted the distro "{project}"', v)
  elseif u.endswith(t, "project.flag.set") then
    v.action, v.flag = req(mm.state), req(mm.flag)
    return F('{user} {action} flag "{flag}"', v)
  elseif u.endswith(t, "project.flag") then
    v.project = m.project.name
    return F('{user} flagged the project "{project}"', v)
  end
  return nil
end

local function packages(msg)
  local m, t = msg.msg, msg.topic
  local function fedora(list)
    local out = {}
    for _, p in ipairs(list or {}) do
      if type(p.distro) == "string" and p.distro:lower() == "fedora" then out[#out + 1] = p.package_name end
    end
    return out
  end
  if has(t, "project.map.update") then
    if m.distro.name:lower() == "fedora" then return {req(m.message.new), req(m.message.prev)} end
  elseif has(t, "project.map.new") then
    if m.distro.name:lower() == "fedora" then return {req(m.message.new)} end
  elseif has(t, "project.version.update") then
    if m.message ~= nil then return fedora(req(m.message.packages)) end
    return fedora(req(m.packages))
  elseif u.endswith(t, "project.flag") then
    return fedora(m.packages)
  end
  return {}
end
P.packages = packages

function P.secondary_icon(msg)
  local user = get_user(msg)
  if u.truthy(user) then
    if has(user, "@") then return u.avatar_url_from_email(user) end
    return u.avatar_url(user)
  end
  local ok, pkgs = pcall(packages, msg)
  if ok and #pkgs > 0 then
    table.sort(pkgs)
    return "https://apps.fedoraproject.org/packages/images/icons/" .. pkgs[1] .. ".png"
  end
  return nil
end

function P.usernames(msg)
  local user = get_user(msg)
  if u.truthy(user) and not has(user, "@") then return {user} end
  return {}
end

function P.objects(msg)
  local m, t = msg.msg, msg.topic
  local function proj() return {"projects/" .. u.str(m.project.name)} end
  if has(t, "project.map.update") then
    local d = u.str(m.distro.name)
    return {"mappings/" .. d .. "/" .. u.str(req(m.message.new)), "mappings/" .. d .. "/" .. u.str(req(m.message.prev)),
      "distros/" .. d, "projects/" .. u.str(m.project.name)}
  elseif has(t, "project.map.new") then
    local d = u.str(m.distro.name)
    return {"mappings/" .. d .. "/" .. u.str(req(m.message.new)), "distros/" .. d, "projects/" .. u.str(m.project.name)}
  end
  for _, s in ipairs({"project.version.remove", "project.remove", "project.map.remove",
      "project.version.update", "project.edit", "project.add.tried", "project.add"}) do
    if has(t, s) then return proj() end
  end
  if u.endswith(t, "project.flag") then return proj()
  elseif has(t, "distro.add") then return {"distros/" .. u.str(m.distro.name)}
  elseif has(t, "distro.edit") then
    return {"distros/" .. u.str(req(m.message.old)), "distros/" .. u.str(req(m.message.new))}
  elseif has(t, "distro.remove") then return {"distros/" .. u.str(m.distro.name)}
  elseif u.endswith(t, "project.flag.set") then return {"flag/" .. u.str(req(m.message.flag))}
  end
  return {}
end
