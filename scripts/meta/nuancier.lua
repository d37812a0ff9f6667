-- Nuancier, the wallpaper elections (org.fedoraproject.*.nuancier.*).
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "nuancier", entry = "nuancier", obj = "Wallpaper Elections",
  icon = "https://apps.fedoraproject.org/img/icons/nuancier.png"}

function P.link(msg)
  local m = msg.msg
  local url = u.get(m, "candidate", "original_url")
  if url ~= nil then return url end
  local kind = u.words(msg.topic)[5]
  return "https://apps.fedoraproject.org/nuancier/" .. u.str(kind) .. "/" .. u.str(u.req(m.election.id))
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local v = {agent = u.req(m.agent), name = u.req(m.election.name)}
  local tmpl = ""
  if has(t, "election.update") then
    v.details = table.concat(u.req(m.updated), ", ")
    tmpl = '{agent} changed the following details on the "{name}" election: {details}'
  elseif has(t, "election.new") then
    tmpl = '{agent} created a new election "{name}"'
  elseif has(t, "candidate.new") then
    tmpl = '{agent} uploaded a new candidate for the "{name}" wallpaper election'
  elseif has(t, "candidate.denied") or has(t, "candidate.approved") then
    v.author, v.candidate = u.req(m.candidate.submitter), u.req(m.candidate.name)
    local verb = has(t, "candidate.denied") and "denied" or "approved"
    tmpl = "{agent} " .. verb .. ' {author}\'s "{candidate}" submission to the "{name}" wallpaper election'
  end
  return F(tmpl, v)
end

function P.secondary_icon(msg) return u.avatar_url(u.req(msg.msg.agent)) end

function P.usernames(msg)
  local m = msg.msg
  local out = {u.req(m.agent)}
  if m.candidate ~= nil then out[2] = u.req(m.candidate.submitter) end
  return out
end

function P.objects(msg)
  local m = msg.msg
  local w = u.words(msg.topic)
  local e = u.req(m.election)
  local tokens = {u.str(u.req(e.year)), u.str(u.req(e.name))}
  local cand = u.get(m, "candidate", "name")
  if u.truthy(cand) then tokens[#tokens + 1] = u.str(cand) end
  tokens[#tokens + 1] = w[#w - 1]
  tokens[#tokens + 1] = w[#w]
  return {table.concat(tokens, "/")}
end
