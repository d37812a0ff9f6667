-- fedmsg's own processors: announcements and logger messages
-- (org.fedoraproject.*.announce.*, org.fedoraproject.*.logger.*). Their
-- user is the envelope's username, which they also name as the agent.
local u = util

local function envelope_user(msg) return msg.username end

local A = processor{name = "announce", entry = "~announce", obj = "Announcements"}
function A.subtitle(msg) return u.req(msg.msg.message) end
function A.link(msg) return u.req(msg.msg.link) end
function A.usernames(msg) return {envelope_user(msg)} end
A.agent = envelope_user

local L = processor{name = "logger", entry = "~logger", obj = "System Logs"}
function L.subtitle(msg)
  if not u.contains(msg.topic, "logger.log") then return "<unhandled log message>" end
  local text = msg.msg.log
  if text == nil then text = "<custom JSON message>" end
  local user = msg.username
  if user == nil then user = "none" end
  return u.str(text) .. " (" .. u.str(user) .. ")"
end
function L.usernames(msg) return {envelope_user(msg)} end
L.agent = envelope_user
