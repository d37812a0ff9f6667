-- Nagios service monitoring (org.fedoraproject.*.nagios.*).
local u = util
local F = u.format
local ends = u.endswith

local ICON = "https://apps.fedoraproject.org/img/icons/nagios-logo.png"
local P = processor{name = "Nagios", entry = "nagios", obj = "Service Outage Alerts", icon = ICON}

local states = {CRITICAL = "down", WARNING = "having problems", OK = "back up"}

-- An acknowledgement's author is an OpenID URL: the account is the first
-- word of its host.
local function ack_user(v)
  local parts = u.split(v, "://")
  return u.split(parts[#parts], ".")[1]
end

function P.usernames(msg)
  local m = msg.msg
  local out = {}
  local s = u.req(m.service_ack_author, "service_ack_author")
  if u.truthy(s) then out[#out + 1] = ack_user(s) end
  local h = u.req(m.host_ack_author, "host_ack_author")
  if u.truthy(h) then out[#out + 1] = ack_user(h) end
  return out
end

local function first_user(msg)
  local users = P.usernames(msg)
  table.sort(users)
  return users[1]
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local state = states[u.req(m.state)] or "in an unknown state"
  local host = u.req(m.host)
  local result
  if ends(t, "host.state.change") then
    result = F("{host} is {state}", {host = host, state = state})
  elseif ends(t, "service.state.change") then
    local service = m.service
    if service == nil then service = "some service" end
    result = F("{service} is {state} on {host}", {service = service, host = host, state = state})
  end
  if u.req(m.type) == "ACKNOWLEDGEMENT" then
    result = (first_user(msg) or "somebody") .. " acknowledged that " .. u.req(result)
  end
  if u.truthy(result) and m.output ~= nil then
    result = result .. ': "' .. u.str(m.output) .. '"'
  end
  return result
end

function P.link(msg)
  return "https://admin.fedoraproject.org/nagios/cgi-bin/status.cgi?navbarsearch=1&host=" .. u.req(msg.msg.host)
end

function P.secondary_icon(msg)
  local user = first_user(msg)
  if user then return u.avatar_url(user) end
  return ICON
end

function P.objects(msg)
  local m = msg.msg
  local service = m.service
  if service == nil then service = "unknown" end
  if ends(msg.topic, "host.state.change") then service = "state" end
  return {u.req(m.host) .. "/" .. u.str(service)}
end
