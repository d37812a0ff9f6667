-- Karma cookies given on IRC (org.fedoraproject.*.irc.*), the karma processor.
local u = util

local P = processor{name = "irc", entry = "irc", obj = "IRC Karma"}

function P.subtitle(msg)
  local m = msg.msg
  local tmpl = "{agent} gave {recipient}({total}) negative karma in {channel}"
  if u.req(m.vote) == 1 then tmpl = "{agent} gave {recipient}({total}) a karma cookie in {channel}" end
  if m.line ~= nil then tmpl = tmpl .. '.  "{line}"' end
  return u.format_req(tmpl, m)
end

function P.link(msg) return "https://badges.fedoraproject.org/user/" .. u.req(msg.msg.recipient) end

-- The icon is the giver's avatar, the secondary icon the receiver's.
function P.icon(msg) return u.avatar_url(u.req(msg.msg.agent)) end
function P.secondary_icon(msg) return u.avatar_url(u.req(msg.msg.recipient)) end
function P.usernames(msg) return {u.req(msg.msg.agent), u.req(msg.msg.recipient)} end
function P.objects(msg) return {"karma/" .. u.req(msg.msg.recipient)} end
