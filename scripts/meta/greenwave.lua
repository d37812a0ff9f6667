-- Greenwave gating decisions (org.fedoraproject.*.greenwave.*), entry point gw.
local u = util

local P = processor{name = "greenwave", entry = "gw", obj = "Gating Decisions",
  icon = "https://apps.fedoraproject.org/img/icons/greenwave.png"}

-- Early messages misspelled the field "policies_satisified".
local function satisfied(m)
  local v = m.policies_satisfied
  if v == nil then v = u.req(m.policies_satisified) end
  return v
end

function P.link(msg)
  local subject = u.req(msg.msg.subject)
  if not u.truthy(subject) then return nil end
  return "https://taskotron.fedoraproject.org/resultsdb/results?" .. u.urlencode(subject[1])
end

function P.subtitle(msg)
  local m = msg.msg
  local decision = u.truthy(satisfied(m)) and "is a GO" or "says NO-GO"
  local item = m.subject_identifier
  if not u.truthy(item) then
    local items = u.collect(u.req(m.subject), function(e) return u.truthy(e.item) end, function(e) return e.item end)
    item = items[1] or '"something"'
  end
  return u.format_req('greenwave {decision} on {item} for "{decision_context}" ({product_version})',
    {decision = decision, item = item, decision_context = m.decision_context, product_version = m.product_version})
end

function P.packages(msg)
  return u.collect(u.req(msg.msg.subject),
    function(e) return u.truthy(e.item) and e.type == "koji_build" end,
    function(e) return u.rsplit(e.item, "-", 2)[1] end)
end

function P.secondary_icon(msg)
  local pk = P.packages(msg)
  if #pk == 0 then return nil end
  table.sort(pk)
  return "https://apps.fedoraproject.org/packages/images/icons/" .. pk[1] .. ".png"
end
