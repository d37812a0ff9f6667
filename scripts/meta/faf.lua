-- FAF, the ABRT crash statistics server (org.fedoraproject.*.faf.*).
local u = util

local P = processor{name = "faf", entry = "faf", obj = "New and significant crashes",
  icon = "https://apps.fedoraproject.org/packages/images/icons/abrt.png"}

local function components(m)
  local c = m.components
  if c == nil then return {} end
  return c
end

function P.subtitle(msg)
  local m = msg.msg
  local what = "report"
  if u.contains(msg.topic, "problem.threshold") then what = "problem" end
  return "ABRT " .. what .. " for package " .. table.concat(components(m), ", ") ..
    " has reached " .. u.str(m.count) .. " occurrences"
end

function P.link(msg) return msg.msg.url end
function P.usernames(msg) return msg.msg.maintainers or {} end
function P.packages(msg) return components(msg.msg) end

function P.secondary_icon(msg)
  local c = components(msg.msg)
  if #c == 0 then return nil end
  return "https://apps.fedoraproject.org/packages/images/icons/" .. u.str(c[1]) .. ".png"
end
