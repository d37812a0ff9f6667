-- The On Demand Compose Service (org.fedoraproject.*.odcs.*).
local u = util

local P = processor{name = "odcs", entry = "odcs", obj = "ODCS Composes",
  icon = "https://apps.fedoraproject.org/img/icons/odcs.png"}

local function compose(msg) return u.req(msg.msg.compose) end

function P.link(msg)
  return "https://odcs.fedoraproject.org/api/1/composes/" .. u.str(u.req(compose(msg).id))
end

function P.subtitle(msg)
  local c = compose(msg)
  local id = c.pungi_compose_id
  if not u.truthy(id) then id = u.req(c.id) end
  return u.format("{owner}'s compose {compose_id} entered the {state_name} state.",
    {owner = u.req(c.owner), compose_id = id, state_name = u.req(c.state_name)})
end

function P.secondary_icon(msg) return u.avatar_url(u.req(compose(msg).owner)) end
function P.usernames(msg) return {u.req(compose(msg).owner)} end
function P.objects(msg) return {u.req(compose(msg).id)} end
