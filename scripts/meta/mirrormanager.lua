-- MirrorManager's crawler and netblocks (org.fedoraproject.*.mirrormanager.*).
local u = util
local F = u.format
local has = u.contains

local ICON = "https://apps.fedoraproject.org/img/icons/downloads.png"
local P = processor{name = "mirrormanager", entry = "mm2", obj = "Mirror Updates", icon = ICON,
  secondary_icon = ICON, link = "https://mirrors.fedoraproject.org"}

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "mirrormanager.crawler.complete") then
    local ok, bad = 0, 0
    local results = u.req(m.results)
    for _, r in ipairs(results) do
      if r.rc == 0 then ok = ok + 1 else bad = bad + 1 end
    end
    return F("mirrormanager's crawler finished a crawl of {total} mirrors ({succeeded} succeeded, {failed} failed)",
      {total = #results, succeeded = ok, failed = bad})
  elseif has(t, "mirrormanager.crawler.start") then
    return "mirrormanager's crawler started a crawl of " .. u.len(u.req(m.hosts)) .. " mirrors"
  elseif has(t, "mirrormanager.netblocks.get") then
    local typ = u.req(m.type)
    local status = u.truthy(u.req(m.success)) and "successfully updated" or "failed to update"
    return F("mirrormanager's backend {status} its {type} netblocks file", {status = status, type = typ})
  end
  return nil
end

function P.objects(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "mirrormanager.crawler") then
    if m.hosts ~= nil then
      return u.collect(m.hosts, nil, function(h)
        local name = h.host
        if name == nil then name = h.name end
        return "mirrors/" .. u.str(name)
      end)
    end
    return u.collect(u.req(m.results), nil, function(r) return "mirrors/" .. u.str(u.req(r.host.name)) end)
  end
  if has(t, "mirrormanager.netblocks") then return {"netblocks/" .. u.str(u.req(m.type))} end
  return {}
end
