-- Taskotron task results (org.fedoraproject.*.taskotron.*).
-- For bodhi_update items the original asked Bodhi over the network for
-- the update's builds; offline, such a result names no package.
local u = util

local ICON = "https://apps.fedoraproject.org/img/icons/taskotron.png"
local P = processor{name = "taskotron", entry = "taskotron", obj = "Automated task results", icon = ICON}

local function or_empty(v) if v == nil then return "" end return v end

function P.subtitle(msg)
  local m = msg.msg
  if not u.endswith(msg.topic, "taskotron.result.new") then return nil end
  local task, result = u.req(m.task), u.req(m.result)
  return u.str(or_empty(task.name)) .. " " .. u.str(or_empty(result.outcome)) .. " for " .. u.str(or_empty(task.item))
end

function P.link(msg)
  if not u.endswith(msg.topic, "taskotron.result.new") then return nil end
  return or_empty(u.req(msg.msg.result).log_url)
end

function P.packages(msg)
  local task = u.req(msg.msg.task)
  if u.req(task.type) == "koji_build" then
    local parts = u.rsplit(u.req(task.item), "-", 2)
    if #parts ~= 3 then error("not an NVR") end
    return {parts[1]}
  end
  return {}
end

function P.objects(msg)
  local m = msg.msg
  local name = u.str(or_empty(u.req(m.task).name))
  local outcome = u.str(or_empty(u.req(m.result).outcome))
  return u.collect(P.packages(msg), nil, function(p) return name .. "/" .. p .. "/" .. outcome end)
end

function P.secondary_icon(msg)
  local pk = P.packages(msg)
  if #pk ~= 1 then return ICON end
  return "https://apps.fedoraproject.org/packages/images/icons/" .. pk[1] .. ".png"
end
