-- FMN, the notification preferences service (org.fedoraproject.*.fmn.*).
local u = util
local F = u.format
local has = u.contains

local LINK = "https://apps.fedoraproject.org/notifications/"
local P = processor{name = "FMN", entry = "fmn", obj = "Notification Preference Updates",
  icon = "https://apps.fedoraproject.org/img/icons/fedmsg.png", link = LINK}

-- The account is the first dotted word of the OpenID host.
local function user_of(msg) return u.split(u.req(msg.msg.openid), ".")[1] end

local function topic_word(msg, k)
  local w = u.words(msg.topic)
  return w[#w + k]
end

local swaps = {batch_values = "digest options", details = "delivery details"}

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local v = {user = user_of(msg), ctx = u.req(m.context), obj = topic_word(msg, -1), changed = u.req(m.changed)}
  local tmpl = ""
  if has(t, "fmn.confirmation.update") then
    tmpl = "the {changed} of one of {user}'s pending confirmations changed"
  elseif has(t, "fmn.rule.update") then
    tmpl = "{user} updated the {changed} on a fmn {ctx} rule"
  elseif has(t, "fmn.filter.update") then
    tmpl = "{user} updated the {changed} on a fmn {ctx} filter"
  elseif has(t, "fmn.preference.update") then
    if v.changed == "enabled" then
      tmpl = "{user} toggled their flow of {ctx} messages"
    else
      v.changed = swaps[v.changed] or v.changed
      tmpl = "{user} updated their {ctx} {changed}"
    end
  end
  return F(tmpl, v)
end

function P.secondary_icon(msg) return u.avatar_url(user_of(msg)) end
function P.usernames(msg) return {user_of(msg)} end

function P.objects(msg)
  local m = msg.msg
  return {table.concat({user_of(msg), u.str(u.req(m.context)), topic_word(msg, -1), u.str(u.req(m.changed))}, "/")}
end
