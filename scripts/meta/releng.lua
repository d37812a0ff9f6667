-- Release engineering's Atomic Host releases (org.fedoraproject.*.releng.*).
local u = util
local ends = u.endswith

local ICON = "https://apps.fedoraproject.org/img/icons/atomic.png"
local P = processor{name = "releng", entry = "releng", obj = "Releng Events", icon = ICON,
  secondary_icon = ICON, link = "https://download.fedoraproject.org/pub/alt/atomic/stable/"}

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local raw
  if m.x86_64 ~= nil then raw = u.req(m.x86_64.atomic_raw) else raw = u.req(m.atomic_raw) end
  local release = raw.release
  if release == nil then release = "" end
  if ends(t, ".releng.atomic.twoweek.begin") then
    return "Release engineering scripts started evaluating a new set of builds for a Fedora " ..
      u.str(release) .. " Atomic Host release"
  elseif ends(t, ".releng.atomic.twoweek.complete") then
    return "A new release of Fedora " .. u.str(release) .. " Atomic Host is ready"
  end
  return nil
end

function P.objects(msg)
  local m = msg.msg
  if m.x86_64 ~= nil then return u.keys(m) end
  local out = {}
  for _, k in ipairs(u.keys(m)) do
    if u.startswith(k, "atomic_") then out[#out + 1] = u.str(u.req(m[k].release)) .. "/" .. k end
  end
  return out
end
