-- the-new-hotness: upstream release monitoring turned into Fedora bugs
-- and scratch builds (org.fedoraproject.*.hotness.*). Every message
-- carries the message that triggered it under msg.trigger.
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "hotness", entry = "hotness", obj = "Fresh Builds & Bugs",
  icon = "https://apps.fedoraproject.org/packages/images/icons/package_128x128.png"}

local function trigger(msg) return u.req(u.get(msg.msg, "trigger")) end

local function fedora_names(pkgs)
  return u.collect(u.req(pkgs), function(p) return p.distro == "Fedora" end,
    function(p) return p.package_name end)
end

local task_states = {FAILED = "failed", FREE = "submitted", ASSIGNED = "assigned",
  CANCELLED = "cancelled", CLOSED = "completed", OPEN = "started"}
local build_states = {[0] = "started", [1] = "completed", [2] = "deleted", [3] = "cancelled", [4] = "failed"}

local drop_reasons = {
  anitya = "release-monitoring.org doesn't know what that project is called in Fedora land",
  bugzilla = "a bugzilla ticket had already been filed",
  pkgdb = "pkgdb says the maintainers are not interested in bugs being filed",
  rawhide = "no rawhide version of the package could be found yet",
}

function P.packages(msg)
  local tr = trigger(msg)
  local orig, ttopic = u.req(tr.msg), u.req(tr.topic)
  if has(ttopic, "anitya") then
    local list = u.get(orig, "message", "packages")
    if list == nil then list = orig.packages end
    if u.truthy(list) then return fedora_names(list) end
  end
  if orig.package_listing ~= nil then return {orig.package_listing.package.name} end
  if has(ttopic, "buildsys.build") then return {u.req(orig.name)} end
  if orig.package ~= nil then return {orig.package.name} end
  return {}
end

function P.usernames(msg)
  local tr = trigger(msg)
  if has(u.req(tr.topic), "buildsys.build") then return {u.req(u.req(tr.msg).owner)} end
  return {}
end

function P.objects(msg)
  local m = msg.msg
  local tr = trigger(msg)
  local orig = u.req(tr.msg)
  local bugs = {}
  if m.bug ~= nil then bugs[1] = "bugs/" .. u.int(m.bug.bug_id) end
  if has(u.req(tr.topic), "anitya") then
    local out = u.collect(fedora_names(u.req(orig.message).packages), nil,
      function(n) return "packages/" .. n end)
    out[#out + 1] = "projects/" .. u.req(orig.project.name)
    for _, b in ipairs(bugs) do out[#out + 1] = b end
    return out
  end
  if orig.package_listing ~= nil then
    local out = {"packages/" .. u.req(orig.package_listing.package.name)}
    if m.project ~= nil then out[#out + 1] = "projects/" .. u.req(m.project.name) end
    return out
  end
  if orig.package ~= nil then return {"packages/" .. u.req(orig.package.name)} end
  return bugs
end

local function first_package(msg)
  local ok, pkgs = pcall(P.packages, msg)
  if not ok then error(pkgs, 0) end
  table.sort(pkgs)
  return pkgs[1]
end

function P.secondary_icon(msg)
  return "https://apps.fedoraproject.org/packages/images/icons/" ..
    (first_package(msg) or "package_128x128") .. ".png"
end

function P.link(msg)
  local m = msg.msg
  if m.bug ~= nil then
    local base = "bugzilla.redhat.com/show_bug.cgi?id="
    if has(msg.topic, ".stg.") then base = "partner-" .. base end
    return "https://" .. base .. u.int(m.bug.bug_id)
  end
  if m.trigger ~= nil then
    local orig = u.req(m.trigger.msg)
    if orig.project ~= nil then
      return "https://release-monitoring.org/project/" .. u.int(orig.project.id) .. "/"
    elseif m.project ~= nil then
      return "https://release-monitoring.org/project/" .. u.int(m.project.id) .. "/"
    elseif orig.package_listing ~= nil then
      return u.req(orig.package_listing.package.review_url)
    elseif orig.package ~= nil then
      return u.req(orig.package.upstream_url)
    end
  end
  return nil
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "hotness.update.bug.file") then
    local tr = trigger(msg)
    local orig = u.req(tr.msg)
    local pkgs
    if u.endswith(u.req(tr.topic), ".project.map.new") then
      pkgs = {u.req(orig.message.new)}
    else
      pkgs = fedora_names(u.req(orig.message).packages)
    end
    return "the-new-hotness filed a bug on " .. table.concat(pkgs, ", ")
  elseif has(t, "hotness.update.bug.followup") then
    local orig = u.req(trigger(msg).msg)
    local bug_id = u.req(m.bug.bug_id)
    if orig.srpm ~= nil then
      return F("scratch build of {srpm} for RHBZ#{bug} {status}",
        {srpm = orig.srpm, bug = bug_id, status = task_states[orig.new] or "unknown"})
    end
    local build = u.req(orig.name) .. "-" .. u.req(orig.version) .. "-" .. u.req(orig.release)
    return F("{user}'s real build of {build} for RHBZ#{bug} {status}",
      {user = u.req(orig.owner), build = build, bug = bug_id, status = u.req(build_states[orig.new])})
  elseif has(t, "hotness.update.drop") then
    local orig = u.req(trigger(msg).msg)
    local reason = u.req(m.reason)
    local thing = first_package(msg)
    if thing == nil then thing = u.req(orig.project.name) end
    return "the-new-hotness saw an update for " .. u.str(thing) .. ", but " ..
      (drop_reasons[reason] or ".... I dunno.  Whatever.")
  elseif has(t, "hotness.project.map") then
    local orig = u.req(trigger(msg).msg)
    local pkg
    if orig.package_listing ~= nil then pkg = orig.package_listing.package.name
    else pkg = orig.package.name end
    local v = {package = pkg}
    if m.reason ~= nil then
      v.reason = m.reason
      return F('hotness tried to map {package} to an upstream project, but failed:  "{reason}"', v)
    elseif m.total ~= nil then
      v.total = m.total
      return F("hotness tried to map {package} to an upstream project, but failed due to ambiguity.  {total} other projects share the same homepage", v)
    elseif m.project ~= nil then
      v.project = u.req(m.project.name)
      if u.truthy(u.req(m.success)) then
        return F("hotness mapped {package} to the pre-existing upstream project {project}", v)
      end
      return F("hotness tried to map {package} to the pre-existing upstream project {project}, but failed for unknown reasons", v)
    end
    if u.truthy(u.req(m.success)) then
      return F("hotness mapped {package} to a brand-new upstream project", v)
    end
    return F("hotness tried to map {package} to a brand-new upstream project, but failed for unknown reasons", v)
  end
  return nil
end
