-- WaiverDB, waivers of test results (org.fedoraproject.*.waiverdb.*).
local u = util

local P = processor{name = "waiverdb", entry = "waiverdb", obj = "New result waivers",
  icon = "https://apps.fedoraproject.org/img/icons/waiverdb.png"}

function P.subtitle(msg)
  return u.format_req('{username} waived result {result_id} ({product_version}): "{comment}"', msg.msg)
end

function P.link(msg)
  return u.format_req("https://waiverdb-web-waiverdb.app.os.fedoraproject.org/api/v1.0/waivers/{id}", msg.msg)
end

-- The waiver's author is the agent (this processor defines one).
function P.agent(msg) return u.req(msg.msg.username) end
function P.usernames(msg) return {P.agent(msg)} end
function P.secondary_icon(msg) return u.avatar_url(P.agent(msg)) end
