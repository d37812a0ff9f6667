-- mdapi, the repository metadata API (org.fedoraproject.*.mdapi.*).
-- Older messages describe the change per category and action under
-- "differences"; newer ones list the packages.
local u = util

local ICON = "https://apps.fedoraproject.org/packages/images/icons/package_128x128.png"
local P = processor{name = "mdapi", entry = "mdapi", obj = "Medata API update", icon = ICON,
  secondary_icon = ICON}

-- each(m, f): f(category, action, name) for every entry of differences.
local function each(m, f)
  for _, cat in ipairs(u.keys(m.differences)) do
    local actions = m.differences[cat]
    for _, action in ipairs(u.keys(actions)) do
      for _, d in ipairs(actions[action]) do
        local name = d[1]
        if u.contains(name, "/") then name = d[#d] end
        f(cat, action, name)
      end
    end
  end
end

function P.packages(msg)
  local m = msg.msg
  if m.differences == nil then return u.req(m.packages) end
  local out = {}
  each(m, function(_, _, name) out[#out + 1] = u.split(name, "(")[1] end)
  return out
end

function P.objects(msg)
  local m = msg.msg
  local repo = u.str(u.req(m.name))
  local out = {}
  if m.differences == nil then
    for _, name in ipairs(u.req(m.packages)) do out[#out + 1] = repo .. "/" .. u.str(name) end
    return out
  end
  each(m, function(cat, action, name) out[#out + 1] = repo .. "/" .. cat .. "/" .. action .. "/" .. u.str(name) end)
  return out
end

local function summary(m)
  if m.differences == nil then return u.list_to_series(u.req(m.packages)) end
  local parts = {}
  for _, cat in ipairs(u.keys(m.differences)) do
    local d = m.differences[cat]
    local a, r = u.len(u.req(d.added)), u.len(u.req(d.removed))
    if a > 0 or r > 0 then parts[#parts + 1] = cat .. ": +" .. a .. "/-" .. r end
  end
  return table.concat(parts, ", ")
end

function P.subtitle(msg)
  if not u.contains(msg.topic, "mdapi.repo.update") then error("unknown mdapi topic") end
  return "mdapi noticed a " .. u.str(u.req(msg.msg.name)) .. " repomd change: " .. summary(msg.msg)
end

function P.link(msg)
  local url = u.req(msg.msg.url)
  if u.startswith(url, "http") then return url end
  return "https://download.fedoraproject.org/pub/" .. url
end
