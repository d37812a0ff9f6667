-- The Product Definition Center (org.fedoraproject.*.pdc.*).
local u = util
local ends = u.endswith

local P = processor{name = "pdc", entry = "pdc", obj = "PDC Composes"}

function P.subtitle(msg)
  local t = msg.topic
  local tmpl = "Unhandled PDC message..."
  if ends(t, ".pdc.rpms") or ends(t, ".pdc.images") then
    tmpl = "PDC imported metadata for {count} {attribute} for the {compose_id} {compose_type} compose"
  elseif ends(t, ".pdc.compose") then
    tmpl = "An entry for the {compose_id} {compose_type} compose was created in the Product Definition Center"
  end
  return u.format_req(tmpl, msg.msg)
end

function P.link(msg)
  return "https://pdc.fedoraproject.org/rest_api/v1/composes/" .. u.str(u.req(msg.msg.compose_id)) .. "/"
end

function P.objects(msg)
  local w = u.words(msg.topic)
  local m = msg.msg
  return {u.str(u.req(m.compose_id)) .. "/" .. u.str(u.req(m.action)) .. "/" .. w[#w]}
end
