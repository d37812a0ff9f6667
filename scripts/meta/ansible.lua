-- Fedora Infrastructure's ansible runs (org.fedoraproject.*.ansible.*).
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "ansible", entry = "ansible", obj = "Ansible Runs",
  icon = "https://apps.fedoraproject.org/img/icons/ansible.png"}

local CHECKOUT = "/srv/web/infra/ansible/"

-- Whether the playbook is one of the infrastructure repository's, and
-- its path relative to the repository (else its file name).
local function playbook(m)
  local pb = u.req(m.playbook)
  if u.startswith(pb, CHECKOUT) then return true, pb:sub(#CHECKOUT + 1) end
  local parts = u.split(pb, "/")
  return false, parts[#parts]
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local user = m.userid
  if user == nil then user = "(no user specified)" end
  local _, pb = playbook(m)
  if has(t, "ansible.playbook.start") then
    return F("{user} started an ansible run of {playbook}", {user = user, playbook = pb})
  elseif has(t, "ansible.playbook.complete") then
    return F("{user}'s {playbook} playbook run completed", {user = user, playbook = pb})
  end
  return ""
end

function P.secondary_icon(msg)
  local user = msg.msg.userid
  if u.truthy(user) then return u.avatar_url(user) end
  return nil
end

function P.link(msg)
  local controlled, pb = playbook(msg.msg)
  if not controlled then return nil end
  return "http://infrastructure.fedoraproject.org/cgit/ansible.git/tree/" .. pb
end

function P.usernames(msg)
  local user = msg.msg.userid
  if u.truthy(user) then return {user} end
  return {}
end

function P.objects(msg)
  local m = msg.msg
  local controlled, pb = playbook(m)
  if not controlled then pb = "uncontrolled-playbooks/" .. pb end
  local out = {pb}
  if m.results ~= nil then
    for _, host in ipairs(u.keys(m.results)) do out[#out + 1] = "inventory/" .. host end
  end
  return out
end
