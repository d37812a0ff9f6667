-- Fedora Badges (org.fedoraproject.*.fedbadges.*).
local u = util
local F = u.format
local has = u.contains

local ICON = "https://apps.fedoraproject.org/img/icons/badges.png"
local P = processor{name = "fedbadges", entry = "fedbadges", obj = "New Badges", icon = ICON}

local function user_of(m)
  if m.user ~= nil then return u.req(m.user.username) end
  return u.req(u.req(m.person).nickname)
end

function P.link(msg) return "https://badges.fedoraproject.org/user/" .. u.str(user_of(msg.msg)) end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local user = user_of(m)
  if has(t, "badge.award") then
    return F('{user} has been awarded the "{name}" badge', {user = user, name = u.req(m.badge.name)})
  elseif has(t, "person.rank.advance") then
    return F("{user} moved to position {rank} on the badges leaderboard", {user = user, rank = u.req(m.person.rank)})
  elseif has(t, "person.login.first") then
    return F("{user} logged in to badges.fedoraproject.org for the first time", {user = user})
  end
  return nil
end

-- An award shows the badge's own image.
function P.icon(msg)
  if has(msg.topic, "badge.award") then return u.req(u.req(msg.msg.badge).image_url) end
  return ICON
end

function P.secondary_icon(msg) return u.avatar_url(user_of(msg.msg)) end
function P.usernames(msg) return {user_of(msg.msg)} end

function P.objects(msg)
  if has(msg.topic, "badge.award") then
    return {u.replace(u.lower(u.req(msg.msg.badge.name)), " ", "-")}
  end
  return {}
end
