-- Zanata translation milestones (org.fedoraproject.*.zanata.*).
local u = util

local ICON = "https://pbs.twimg.com/profile_images/378800000417679469/47eb45c6205aa9f2cdb8705e6d46745c_normal.png"
local P = processor{name = "Zanata", entry = "zanata", obj = "Translation Events", icon = ICON,
  secondary_icon = ICON}

function P.subtitle(msg)
  return u.lower(u.format_req("{docId} from the {project} project is now {milestone} in the '{locale}' locale", msg.msg))
end

local function object(m)
  return u.str(u.req(m.project)) .. "/" .. u.str(u.req(m.version)) .. "/languages/" .. u.str(u.req(m.locale))
end

function P.objects(msg) return {object(msg.msg)} end
function P.link(msg) return "https://fedora.zanata.org/iteration/view/" .. object(msg.msg) end
