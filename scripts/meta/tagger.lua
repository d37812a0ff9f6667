-- Fedora Tagger, votes and labels on packages (org.fedoraproject.*.fedoratagger.*).
local u = util
local F = u.format
local has = u.contains

local ICON = "https://apps.fedoraproject.org/img/icons/tagger.png"
local P = processor{name = "fedoratagger", entry = "tagger", obj = "Package Tag Votes", icon = ICON}

-- A tag's package is a name, or (older messages) a {name: ...} object.
local function pkg_name(p)
  if type(p) == "table" then return u.keys(p)[1] end
  return p
end

local function who(user)
  if u.truthy(u.req(user).anonymous) then return "An anonymous user" end
  return u.req(user.username)
end

function P.link(msg)
  local m = msg.msg
  local pack = pkg_name(u.get(m, "vote", "tag", "package"))
  if not u.truthy(pack) and m.rating ~= nil then pack = u.req(m.rating.package.name) end
  if m.package ~= nil then pack = u.req(m.package.name) end
  if u.truthy(pack) then return "https://apps.fedoraproject.org/tagger/" .. pack end
  return ""
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "fedoratagger.tag.update") then
    local vote = u.req(m.vote)
    return F('{user} {verb}voted "{tag}" on {package}', {user = u.req(vote.user.username),
      tag = u.req(vote.tag.tag), package = pkg_name(u.req(vote.tag.package)),
      verb = u.truthy(u.req(vote.like)) and "up" or "down"})
  elseif has(t, "fedoratagger.rating.update") then
    local r = u.req(m.rating)
    return F("{user} gave {package} a rating of {rating}", {user = who(r.user),
      package = u.req(r.package.name), rating = u.req(r.rating)})
  elseif has(t, "fedoratagger.tag.create") then
    local vote = u.req(m.vote)
    return F('{user} added tag "{tag}" to {package}', {user = u.req(vote.user.username),
      tag = u.req(vote.tag.tag), package = pkg_name(u.req(vote.tag.package))})
  elseif has(t, "fedoratagger.user.rank.update") then
    return F("{user}'s rank changed to {rank}", {user = u.req(m.user.username), rank = u.req(m.user.rank)})
  elseif has(t, "fedoratagger.usage.toggle") then
    local tmpl = "{user} declared that they no longer use {package}"
    if u.truthy(u.req(m.usage)) then tmpl = "{user} declared that they use {package}" end
    return F(tmpl, {user = who(m.user), package = u.req(m.package.name)})
  end
  error("unknown tagger topic")
end

function P.usernames(msg)
  local m, t = msg.msg, msg.topic
  local user
  if has(t, "fedoratagger.tag.") then user = m.vote.user.username
  elseif has(t, "fedoratagger.user.rank.update") then user = m.user.username
  elseif has(t, "fedoratagger.rating.update") then user = m.rating.user.username
  elseif has(t, "fedoratagger.usage.toggle") then user = m.user.username
  else return {} end
  -- the account name "anonymous" stands for nobody
  if u.req(user) == "anonymous" then return {} end
  return {user}
end

function P.secondary_icon(msg)
  local ok, users = pcall(P.usernames, msg)
  if not ok then error(users, 0) end
  if #users > 0 then return u.avatar_url(users[1]) end
  return ICON
end

function P.packages(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "fedoratagger.tag.") then return {pkg_name(u.req(m.vote.tag.package))} end
  if has(t, "fedoratagger.rating.update") then return {u.req(m.rating.package.name)} end
  if has(t, "fedoratagger.usage.toggle") then return {u.req(m.package.name)} end
  return {}
end

function P.objects(msg)
  local pk = P.packages(msg)
  local out = u.collect(pk, nil, function(p) return "packages/" .. p end)
  if msg.msg.vote ~= nil then out[#out + 1] = "labels/" .. u.req(msg.msg.vote.tag.tag) end
  return out
end
