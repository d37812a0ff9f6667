-- RATS, "Run Another Test System" (org.fedoraproject.*.rats.*): test
-- (test, identifier and result_id may be null; null prints as None)
-- runs requested on dist-git pull requests and on taskotron / atomic-ci.
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "rats", entry = "rats", obj = "RATS",
  icon = "https://apps.fedoraproject.org/packages/images/icons/package_128x128.png"}

-- "name", "ns/name" or "fork/user/ns/name" of a pull request's project.
local function project_of(pr)
  local p = u.req(u.req(pr).project)
  local name = u.req(p.name)
  if u.truthy(p.namespace) then name = p.namespace .. "/" .. name end
  if u.truthy(p.parent) then name = "fork/" .. u.req(p.user.name) .. "/" .. name end
  return name
end

function P.link(msg)
  if not has(msg.topic, "test.simple-koji-ci") then return nil end
  -- the dist-git pull request's own link
  local dg = u.req(u.processor_by_entry("pagure_distgit"))
  local m = msg.msg
  local as_pr = {
    topic = u.replace(msg.topic, "rats.test.simple-koji-ci", "pagure.pull-request.new"),
    msg = setmetatable({pullrequest = u.req(m.pull_request)}, {__index = m}),
  }
  return dg.link(as_pr, dg)
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local v = {user = m.agent}
  if has(t, "test.simple-koji-ci") then
    v.project, v.prid = project_of(m.pull_request), u.req(m.pull_request.id)
    return F('{user} requested a run of simple-koji-ci on "{project}/pull-request/{prid}"', v)
  end
  local which
  if has(t, "test.taskotron") then which = "taskotron"
  elseif has(t, "test.atomic-ci") then which = "atomic-ci"
  else return nil end
  v.test, v.target, v.rdbid = m.test, m.identifier, m.result_id
  if u.truthy(v.target) then
    if which == "taskotron" then
      return F("{user} requested a run of taskotron's {test} on \"{target}\"", v)
    end
    return F('{user} requested a run of atomic-ci on "{target}"', v)
  end
  return F("{user} requested a run of " .. which .. " on resultsdb's result id: \"{rdbid}\"", v)
end

function P.secondary_icon(msg)
  local user = msg.msg.agent
  if u.truthy(user) then return u.avatar_url(user) end
  return nil
end

function P.usernames(msg)
  local user = msg.msg.agent
  if u.truthy(user) then return {user} end
  return {}
end

function P.objects(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "test.simple-koji-ci") then
    return {"simple-koji-ci/" .. u.strip(project_of(m.pull_request)) .. "/pull-request/" .. u.str(u.req(m.pull_request.id))}
  end
  local test, target, rdbid = m.test, m.identifier, m.result_id
  if has(t, "test.taskotron") then
    if u.truthy(target) then return {"taskotron/" .. u.str(test) .. "/" .. u.str(target)} end
    return {"taskotron/resultsdb/" .. u.str(rdbid)}
  elseif has(t, "test.atomic-ci") then
    if u.truthy(target) then return {"AtomicCI/" .. u.str(target)} end
    return {"AtomicCI/resultsdb/" .. u.str(rdbid)}
  end
  return {}
end
