-- Ask Fedora, the askbot forum (org.fedoraproject.*.askbot.*).
local u = util
local has = u.contains

local P = processor{name = "Askbot", entry = "askbot", obj = "Ask Fedora Qs & As",
  icon = "https://apps.fedoraproject.org/img/icons/ask_fedora.png"}

local function kind(t) return u.req(u.get(t, "post_type")) == "question" end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local user = u.req(m.agent)
  local title = ""
  local text
  if has(t, "askbot.post.edit") then
    title = u.req(m.thread.title)
    local q = kind(m.post)
    if u.truthy(u.req(m.created)) then
      text = q and "{user} asked the question '{title}'" or "{user} suggested an answer to the question '{title}'"
    else
      text = q and "{user} updated the question '{title}'" or "{user} updated an answer to the question '{title}'"
    end
  elseif has(t, "askbot.tag.update") then
    title = u.req(m.thread.title)
    text = "{user} altered tags on askbot question '{title}'"
  elseif has(t, "askbot.post.flag_offensive.add") then
    title = u.req(m.thread.title)
    text = kind(m.instance) and "{user} flagged a question as offensive!" or "{user} flagged an answer as offensive!"
  elseif has(t, "askbot.post.flag_offensive.delete") then
    text = kind(m.instance) and "{user} unflagged a question as offensive..." or "{user} unflagged an answer as offensive..."
  elseif has(t, "askbot.post.delete") then
    title = u.req(m.thread.title)
    text = kind(m.instance) and "{user} deleted the question '{title}'" or "{user} deleted an answer on '{title}'"
  else
    error("unknown askbot topic")
  end
  return u.format(text, {user = user, title = title})
end

function P.secondary_icon(msg)
  local user = msg.msg.agent
  if not u.truthy(user) then return "" end
  return u.avatar_url(user)
end

function P.usernames(msg)
  local m = msg.msg
  local out = {}
  if m.agent ~= nil then out[1] = m.agent end
  for _, x in ipairs(m.newly_mentioned_users or {}) do out[#out + 1] = x end
  return out
end

function P.objects(msg)
  local m = msg.msg
  local out = {}
  local tags
  if m.tags ~= nil then tags = m.tags
  elseif m.thread ~= nil then tags = u.req(m.thread.tagnames) end
  for _, tag in ipairs(tags or {}) do
    if u.truthy(tag) then out[#out + 1] = "tags/" .. u.str(tag) end
  end
  if m.thread ~= nil then out[#out + 1] = "threads/" .. u.str(u.req(m.thread.pk)) end
  return out
end

function P.link(msg)
  local host = "ask.fedoraproject.org"
  if has(msg.topic, "stg") then host = "ask.stg.fedoraproject.org" end
  return "https://" .. host .. "/question/" .. u.str(u.req(msg.msg.topmost_post_id)) .. "/"
end
