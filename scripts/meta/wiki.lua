-- The Fedora wiki, MediaWiki edits and uploads (org.fedoraproject.*.wiki.*).
local u = util
local has = u.contains

local P = processor{name = "Wiki", entry = "wiki", obj = "Wiki Edits",
  icon = "https://fedoraproject.org/w/skins/common/images/mediawiki.png"}

local function user_of(m)
  local user = m.user
  if user == nil then user = m.user_text end
  if user == nil then user = "" end
  return u.lower(u.str(user))
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "wiki.article.edit") then
    return u.format('{user} made a wiki edit to "{title}"', {user = u.req(m.user), title = u.req(m.title)})
  elseif has(t, "wiki.upload.complete") then
    return u.format('{user} uploaded {filename} to the wiki: "{description}..."', {user = u.req(m.user_text),
      filename = u.req(m.title.mPrefixedText), description = u.usub(u.str(u.req(m.description)), 35)})
  end
  return nil
end

function P.link(msg)
  if has(msg.topic, "wiki.article.edit") then return u.replace(u.req(msg.msg.url), "http://", "https://") end
  return nil
end

function P.secondary_icon(msg) return u.avatar_url(user_of(msg.msg)) end
function P.usernames(msg) return {user_of(msg.msg)} end

function P.objects(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "wiki.article.edit") then return {u.strip_chars(u.req(m.title), "/") .. "-page"} end
  if has(t, "wiki.upload.complete") then return {u.str(u.req(m.url)):sub(2)} end
  return {}
end
