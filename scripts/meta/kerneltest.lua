-- The kernel testing initiative (org.fedoraproject.*.kerneltest.*).
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "kerneltest", entry = "kerneltest", obj = "Kernel Tests",
  icon = "https://apps.fedoraproject.org/img/icons/tux.png", packages = {"kernel"}}

function P.link(msg)
  local test = msg.msg.test
  if test ~= nil then return "https://apps.fedoraproject.org/kerneltest/kernel/" .. u.req(test.kernel_version) end
  return "https://apps.fedoraproject.org/kerneltest/stats"
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local user = u.req(m.agent)
  if m.test ~= nil then
    return F("{user} ran a test of {version} ({result})",
      {user = user, version = u.req(m.test.kernel_version), result = u.req(m.test.result)})
  end
  local tmpl
  if has(t, "release.edit") then tmpl = "{user} edited the {release}-{support} release for kerneltest"
  elseif has(t, "release.new") then tmpl = "{user} added a new release for kerneltest: {release} {support}"
  else return nil end
  return F(tmpl, {user = user, release = u.req(m.release.releasenum), support = u.req(m.release.support)})
end

function P.secondary_icon(msg) return u.avatar_url(u.req(msg.msg.agent)) end
function P.usernames(msg) return {u.req(msg.msg.agent)} end

function P.objects(msg)
  local m = msg.msg
  if m.test ~= nil then return {"kernel/" .. u.req(m.test.kernel_version)} end
  if m.release ~= nil then
    return {"release/" .. u.str(u.req(m.release.releasenum)) .. "/" .. u.str(u.req(m.release.support))}
  end
  return nil
end
