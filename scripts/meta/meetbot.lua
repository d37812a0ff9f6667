-- Zodbot's meetings on IRC (org.fedoraproject.*.meetbot.*), entry point bot.
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "meetbot", entry = "bot", obj = "IRC Meetings",
  icon = "https://apps.fedoraproject.org/img/icons/meetbot.png"}

-- Nicks that are bots, not people.
local bots = {zodbot = true}

local actions = {
  agreed = "noted agreement", accepted = "accepted an item", rejected = "rejected an item",
  action = "noted an action", info = "raised a point of information", idea = "proposed an idea",
  help = "called for help", link = "linked to more information",
}

function P.link(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "meetbot.meeting.complete") then
    return u.replace(u.req(m.url), "http://", "https://") .. ".html"
  elseif has(t, "meetbot.meeting.item.link") then
    -- the first http(s) URL that a space or "$" ends
    return u.req(m.details.line):match("(https?://[a-z0-9%.:].-)[ %$]")
  end
  return nil
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local named = u.truthy(m.meeting_topic)
  local v = {}
  local tmpl
  if has(t, "meetbot.meeting.start") then
    tmpl = named and '{owner} started meeting "{name}" in {channel}' or "{owner} started a meeting in {channel}"
  elseif has(t, "meetbot.meeting.complete") then
    tmpl = named and "{owner}'s meeting titled \"{name}\" ended in {channel}" or "{owner}'s meeting ended in {channel}"
  elseif has(t, "meetbot.meeting.topic.update") then
    tmpl = named and "The topic of {owner}'s \"{name}\" meeting changed to \"{topic}\" in {channel}"
      or "The topic of {owner}'s meeting changed to \"{topic}\" in {channel}"
  elseif has(t, "meetbot.meeting.item.") then
    tmpl = named and '{agent} {action} in the "{name}" meeting in {channel}: "{line}"'
      or '{agent} {action} in a meeting in {channel}: "{line}"'
    local w = u.words(t)
    v.action = u.req(actions[w[#w]])
    v.line = u.req(m.details.line)
  else
    error("unknown meetbot topic")
  end
  if m.details ~= nil then v.agent = u.nick2fas(u.req(m.details.nick)) end
  v.owner = u.nick2fas(u.req(m.owner))
  v.name = m.meeting_topic
  v.channel = u.req(m.channel)
  v.topic = m.topic
  if v.topic == nil then v.topic = "no topic" end
  return F(tmpl, v)
end

local function people(m)
  return u.collect(u.members(u.req(m.attendees)), function(n) return not bots[n] end,
    function(n) return u.nick2fas(n) end)
end

function P.usernames(msg) return people(msg.msg) end

function P.secondary_icon(msg)
  local m = msg.msg
  if m.details ~= nil then return u.avatar_url(u.nick2fas(u.req(m.details.nick))) end
  return u.avatar_url(u.nick2fas(u.req(m.owner)))
end

function P.objects(msg)
  local m = msg.msg
  local out = u.collect(people(m), nil, function(n) return "attendees/" .. n end)
  out[#out + 1] = "channels/" .. u.str(u.req(m.channel))
  if u.truthy(m.meeting_topic) then out[#out + 1] = "titles/" .. u.str(m.meeting_topic) end
  if u.truthy(m.topic) then out[#out + 1] = "topics/" .. u.str(m.topic) end
  return out
end
