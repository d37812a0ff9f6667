-- Fedora Elections (org.fedoraproject.*.fedora_elections.*). Old messages
-- nest the election under "election" and name the user "agent"; newer ones
-- have the election's fields at the top and the user as "fas_user".
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "fedora_elections", entry = "elections", obj = "Fedora Elections"}

local function alias(m)
  if m.election ~= nil then return u.req(m.election.alias) end
  return u.req(m.alias)
end

local function agent(m)
  if m.agent ~= nil then return m.agent end
  return u.req(m.fas_user)
end

function P.link(msg)
  return "https://admin.fedoraproject.org/voting/about/" .. u.str(alias(msg.msg))
end

local tmpls = {
  {"election.new", '{agent} created election "{name}"'},
  {"election.edit", '{agent} edited election "{name}"'},
  {"candidate.new", '{agent} added candidate "{cand_name}" to election "{name}"', true},
  {"candidate.edit", '{agent} edited candidate "{cand_name}" of election "{name}"', true},
  {"candidate.delete", '{agent} deleted candidate "{cand_name}" of election "{name}"', true},
}

function P.subtitle(msg)
  local m = msg.msg
  local v = {name = alias(m), agent = agent(m)}
  for _, x in ipairs(tmpls) do
    if has(msg.topic, x[1]) then
      if x[3] then v.cand_name = u.req(m.candidate.name) end
      return F(x[2], v)
    end
  end
  return ""
end

function P.secondary_icon(msg) return u.avatar_url(agent(msg.msg)) end
function P.usernames(msg) return {agent(msg.msg)} end

function P.objects(msg)
  local w = u.words(msg.topic)
  return {u.str(alias(msg.msg)) .. "/" .. w[#w - 1] .. "/" .. w[#w]}
end
