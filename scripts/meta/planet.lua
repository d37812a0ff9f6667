-- Fedora Planet, the blog aggregator (org.fedoraproject.*.planet.*).
local u = util

local P = processor{name = "planet", entry = "planet", obj = "Blog Posts",
  icon = "https://apps.fedoraproject.org/img/icons/planet_logo.png"}

function P.link(msg) return u.req(u.req(msg.msg.post).link) end

function P.subtitle(msg)
  local m = msg.msg
  local title = u.req(m.post).title
  if title == nil then title = "(no title found)" end
  if m.username ~= nil then return u.format('{user} posted "{title}"', {user = m.username, title = title}) end
  return u.format('New post: "{title}"', {title = title})
end

function P.secondary_icon(msg) return msg.msg.face end

function P.usernames(msg)
  if msg.msg.username ~= nil then return {msg.msg.username} end
  return {}
end

function P.objects(msg)
  local link = u.str(P.link(msg))
  return {u.replace(u.replace(link, "https://", ""), "http://", "")}
end
