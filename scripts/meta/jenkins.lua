-- Jenkins builds (org.fedoraproject.*.jenkins.*).
local u = util
local has = u.contains

local P = processor{name = "Jenkins", entry = "jenkins", obj = "Jenkins build status",
  icon = "https://wiki.jenkins-ci.org/download/attachments/2916393/logo.png?version=1",
  secondary_icon = ""}

local states = {
  {"jenkins.build.failed", "failed to build"},
  {"jenkins.build.passed", "built successfully"},
  {"jenkins.build.unstable", "built with warnings"},
  {"jenkins.build.notbuilt", "did not build"},
  {"jenkins.build.aborted", "build aborted"},
  {"jenkins.build.start", "started building"},
  {"jenkins.build.unknown", "entered an unknown state"},
}

function P.subtitle(msg)
  for _, s in ipairs(states) do
    if has(msg.topic, s[1]) then
      return "Jenkins project '" .. u.str(msg.msg.project) .. "' " .. s[2]
    end
  end
  error("unknown jenkins topic")
end

function P.link(msg)
  local m = msg.msg
  if m.build == nil or m.project == nil then return nil end
  return "http://jenkins.cloud.fedoraproject.org/job/" .. u.str(m.project) .. "/" .. u.str(m.build) .. "/"
end

function P.objects(msg)
  return {"jenkins/" .. u.str(u.req(msg.msg.project)) .. "/" .. u.topic_words(msg, -2)}
end
