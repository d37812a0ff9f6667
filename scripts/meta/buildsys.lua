-- Koji, the build system (org.fedoraproject.*.buildsys.*).
local u = util
local F = u.format

local ICON = "https://fedoraproject.org/w/uploads/2/20/Artwork_DesignService_koji-icon-48.png"
local P = processor{name = "buildsys", entry = "buildsys", obj = "Koji Builds", icon = ICON}

local function has(t, s) return u.contains(t, s) end
local function req(v) if v == nil then error("missing field", 2) end return v end

local bases = {
  primary = "http://koji.fedoraproject.org/koji",
  ppc = "http://ppc.koji.fedoraproject.org/koji",
  s390 = "http://s390.koji.fedoraproject.org/koji",
  arm = "http://arm.koji.fedoraproject.org/koji",
}

-- tmpl filled from extra, then the message's fields; every {key} is required
local function fill(tmpl, m, extra)
  return u.format_req(tmpl, setmetatable(extra or {}, {__index = m}))
end

local build_states = {
  [0] = "{owner}'s {name}-{version}-{release} started building{inst}",
  [1] = "{owner}'s {name}-{version}-{release} completed{inst}",
  [2] = "{owner}'s {name}-{version}-{release} was deleted{inst}",
  [3] = "{owner}'s {name}-{version}-{release} failed to build{inst}",
  [4] = "{owner}'s {name}-{version}-{release} was cancelled{inst}",
}
local task_states = {
  OPEN = "{owner}'s scratch build of {srpm}{target} started{inst}",
  FAILED = "{owner}'s scratch build of {srpm}{target} failed{inst}",
  CLOSED = "{owner}'s scratch build of {srpm}{target} completed{inst}",
  CANCELED = "{owner}'s scratch build of {srpm}{target} was cancelled{inst}",
}

local function without_owner(tmpl, owner)
  if not u.truthy(owner) then return tmpl:sub(#"{owner}'s " + 1) end
  return tmpl
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local inst = m.instance or "primary"
  if inst == "primary" then inst = "" else inst = " (" .. u.str(inst) .. ")" end
  local x = {inst = inst}
  if has(t, "buildsys.tag") then
    return fill("{owner}'s {name}-{version}-{release} tagged into {tag} by {user}{inst}", m, x)
  elseif has(t, "buildsys.untag") then
    return fill("{owner}'s {name}-{version}-{release} untagged from {tag} by {user}{inst}", m, x)
  elseif has(t, "buildsys.repo.init") then
    return F("Repo initialized:  {tag}{inst}", {inst = inst, tag = m.tag or "unknown"})
  elseif has(t, "buildsys.repo.done") then
    return F("Repo done:  {tag}{inst}", {inst = inst, tag = m.tag or "unknown"})
  elseif has(t, "buildsys.package.list.change") then
    return fill("Package list change for {package}:  '{tag}'{inst}", m, x)
  elseif has(t, "buildsys.rpm.sign") then
    local kw
    if m.info ~= nil then kw = m.info
    else
      kw = {}
      for k, v in pairs(req(m.rpm)) do kw[k] = v end
      kw.sigkey = req(m.sigkey)
    end
    return fill("Koji build {name}-{version}-{release}.{arch}.rpm signed with sigkey '{sigkey}'", kw)
  elseif has(t, "buildsys.build.state.change") then
    local tmpl = req(build_states[req(m.new)])
    return fill(without_owner(tmpl, m.owner), m, x)
  elseif has(t, "buildsys.task.state.change") then
    local target = ""
    local request = u.get(m, "info", "request")
    if u.truthy(request) then
      local targets = {}
      for _, item in ipairs(request) do
        if type(item) ~= "table" and not u.endswith(u.str(item), ".rpm") then targets[#targets + 1] = u.str(item) end
      end
      if #targets > 0 then target = " for " .. u.list_to_series(targets) end
    end
    local tmpl = task_states[req(m.new)] or "{owner}'s scratch build of {srpm}{target} changed{inst}"
    x.target = target
    return fill(without_owner(tmpl, m.owner), m, x)
  end
  return nil
end

function P.secondary_icon(msg)
  local owner = msg.msg.owner
  if u.truthy(owner) then return u.avatar_url(owner) end
  return ICON
end

function P.usernames(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "buildsys.tag") or has(t, "buildsys.untag") then
    return {req(m.owner), req(m.user)}
  elseif has(t, "buildsys.build.state.change") or has(t, "buildsys.task.state.change") then
    if u.truthy(m.owner) then return {m.owner} end
  end
  return {}
end

function P.packages(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "buildsys.tag") or has(t, "buildsys.untag") or has(t, "buildsys.build.state.change") then
    return {req(m.name)}
  elseif has(t, "buildsys.package.list.change") then
    return {req(m.package)}
  elseif has(t, "buildsys.rpm.sign") then
    if m.info ~= nil then return {req(m.info.name)} end
    return {req(m.rpm.name)}
  end
  return {}
end

local function id(v) return string.format("%d", req(v)) end

function P.link(msg)
  local m, t = msg.msg, msg.topic
  local base = bases[m.instance or "primary"]
  if base == nil then error("unhandled instance") end
  if has(t, ".stg.") then base = "http://koji.stg.fedoraproject.org/koji" end
  for _, s in ipairs({"buildsys.tag", "buildsys.untag", "buildsys.repo.init", "buildsys.repo.done"}) do
    if has(t, s) and m.tag_id ~= nil then return base .. "/taginfo?tagID=" .. id(m.tag_id) end
  end
  if has(t, "buildsys.build.state.change") then return base .. "/buildinfo?buildID=" .. id(m.build_id)
  elseif has(t, "buildsys.task.state.change") then return base .. "/taskinfo?taskID=" .. id(m.id)
  elseif has(t, "buildsys.package.list.change") then return nil
  elseif has(t, "buildsys.rpm.sign") then
    local b = m.info and m.info.build_id or u.get(m, "rpm", "build_id")
    return base .. "/buildinfo?buildID=" .. id(b)
  end
  return base
end

function P.objects(msg)
  local m, t = msg.msg, msg.topic
  local inst = m.instance or "primary"
  local function build() return table.concat({inst, "builds", req(m.name), req(m.version), req(m.release)}, "/") end
  if has(t, "buildsys.tag") then
    return {build(), inst .. "/tags/" .. req(m.tag)}
  elseif has(t, "buildsys.untag") then
    return {build(), inst .. "/tags/" .. (m.tag or "unknown")}
  elseif has(t, "buildsys.build.state.change") then
    return {build()}
  elseif has(t, "buildsys.task.state.change") then
    return {inst .. "/scratch_builds/" .. req(m.srpm)}
  elseif has(t, "buildsys.repo.init") or has(t, "buildsys.repo.done") then
    return {inst .. "/repos/" .. (m.tag or "unknown")}
  elseif has(t, "buildsys.package.list.change") then
    return {inst .. "/tags/" .. (m.tag or "unknown")}
  elseif has(t, "buildsys.rpm.sign") then
    if m.info ~= nil then return {"signatures/" .. req(m.info.name)} end
    return {"signatures/" .. req(m.rpm.name)}
  end
  return {}
end
