-- The Module Build Service (org.fedoraproject.*.mbs.*).
local u = util

local P = processor{name = "mbs", entry = "mbs", obj = "Module Builds",
  icon = "https://apps.fedoraproject.org/img/icons/modularity.png"}

function P.link(msg)
  return u.format_req("https://mbs.fedoraproject.org/module-build-service/1/module-builds/{id}", msg.msg)
end

function P.subtitle(msg)
  return u.format_req("{owner}'s build of modules/{name} entered the {state_name} state.", msg.msg)
end

function P.secondary_icon(msg) return u.avatar_url(u.req(msg.msg.owner)) end
function P.usernames(msg) return {u.req(msg.msg.owner)} end
function P.objects(msg) return {u.req(msg.msg.name)} end
