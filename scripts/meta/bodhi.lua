-- Bodhi, the Fedora update system (org.fedoraproject.*.bodhi.*), and the
-- bodhi.updates.*.sync topics of the updates sync script.
local u = util

local ICON = "https://apps.fedoraproject.org/img/icons/bodhi.png"
local PREFIX = "https://bodhi.fedoraproject.org"

local P = processor{name = "Bodhi", entry = "bodhi", obj = "Package Updates", icon = ICON}

local function has(topic, s) return u.contains(topic, s) end

local function is_ftp_sync(topic)
  return has(topic, "bodhi.updates.") and u.endswith(topic, ".sync")
end

local function sync_product(msg)
  local w = u.words(msg.topic)
  local product = w[#w - 1]
  if product == "fedora" then return "Fedora" end
  if product == "epel" then return "EPEL" end
  return product
end

-- The release of a sync message, and whether it is modular ("30m").
local function sync_release(msg)
  local release = msg.msg.release
  if u.endswith(release, "m") then
    return (release:gsub("m+$", "")), true
  end
  return release, false
end

local function truncate(s)
  if #s >= 40 then return s:sub(1, 40) .. "..." end
  return s
end

local function comment_of(msg)
  local c = msg.msg.comment
  if c == nil then return {} end
  return c
end

local function update_of(msg)
  local up = msg.msg.update
  if up == nil then up = comment_of(msg).update end
  return up
end

-- The update's title, or its builds' NVRs, or the comment's update_title.
local function titlestring(msg)
  local comment = comment_of(msg)
  local update = update_of(msg)
  if not u.truthy(update) then
    return comment.update_title or ""
  end
  local title = update.title
  if not u.truthy(title) then
    local nvrs = {}
    for _, b in ipairs(update.builds or {}) do nvrs[#nvrs + 1] = b.nvr end
    title = table.concat(nvrs, " ")
  end
  return title
end

local function title_or_alias(msg)
  local comment = comment_of(msg)
  local update = update_of(msg) or {}
  for _, v in ipairs({update.alias or false, update.title or false, comment.update_alias or false}) do
    if u.truthy(v) then return v end
  end
  return comment.update_title or ""
end

local function comment_author(msg)
  local c = comment_of(msg)
  local a = c.user
  if a == nil then a = c.author end
  if type(a) == "table" then a = a.name end
  return a
end

local function update_author(msg)
  local up = msg.msg.update or {}
  local a = up.user
  if a == nil then a = up.submitter end
  if type(a) == "table" then a = a.name end
  return a
end

local function override_author(msg)
  local o = msg.msg.override
  local a
  if u.truthy(o) then
    a = o.submitter
    if a == nil then error("override without submitter") end
  end
  if type(a) == "table" then a = a.name; if a == nil then error("submitter without name") end end
  return a
end

local function override_nvr(msg)
  local b = (msg.msg.override or {}).build
  if type(b) == "table" then return b.nvr end
  return b
end

-- Package names of a string of NVRs split by spaces or commas.
local function u2p(s)
  local out = {}
  for part in (s .. " "):gmatch("([^ ,]*)[ ,]") do
    out[#out + 1] = u.rsplit(part, "-", 2)[1]
  end
  return out
end

local update_topics = {
  "bodhi.update.comment", "bodhi.update.complete", "bodhi.update.request",
  "bodhi.update.edit", "bodhi.update.eject", "bodhi.update.karma.threshold",
  "bodhi.update.requirements_met", "bodhi.errata.publish",
}

local function any_in(topic, list)
  for _, t in ipairs(list) do if has(topic, t) then return true end end
  return false
end

function P.secondary_icon(msg)
  local t = msg.topic
  local user
  if has(t, "bodhi.update.comment") then user = comment_author(msg)
  elseif has(t, "bodhi.buildroot_override") then user = override_author(msg)
  elseif has(t, "bodhi.stack") then
    user = msg.msg.agent
    if user == nil then error("no agent") end
  elseif u.truthy(update_author(msg)) then user = update_author(msg)
  else user = msg.msg.agent end
  if u.truthy(user) then return u.avatar_url(user) end
  local ts = titlestring(msg)
  if u.truthy(ts) then
    local pkgs = u2p(ts)
    if #pkgs > 0 then
      return "https://apps.fedoraproject.org/packages/images/icons/" .. pkgs[1] .. ".png"
    end
  end
  return ICON
end

local function need(v)
  if v == nil then error("missing field", 2) end
  return v
end

function P.subtitle(msg)
  local t, m = msg.topic, msg.msg
  local s = u.str
  if is_ftp_sync(t) then
    local release, modular = sync_release(msg)
    return u.fmt("New {} {} {}{} content synced out ({} changed with {} files deleted)",
      sync_product(msg), release, need(m.repo), modular and " modular" or "",
      need(m.bytes), need(m.deleted))
  elseif has(t, "bodhi.masher.start") or has(t, "bodhi.composer.start") then
    local agent = need(m.agent)
    if m.updates ~= nil then
      return u.fmt("{} requested a mash of {} updates", agent, u.len(m.updates))
    end
    return u.fmt("{} requested a mash of some updates", agent)
  elseif has(t, "bodhi.update.comment") then
    local c = need(m.comment)
    local title = c.update_title
    if title == nil then title = (c.update or {}).title or "" end
    return u.fmt("{} commented on bodhi update {} (karma: {})",
      comment_author(msg), truncate(title), need(c.karma))
  elseif has(t, "bodhi.update.complete.") then
    local up = need(m.update)
    return u.fmt("{}'s {} bodhi update completed push to {}",
      update_author(msg), truncate(titlestring(msg)), need(up.status))
  elseif has(t, "bodhi.update.eject") then
    need(m.update)
    return u.fmt("{}'s {} bodhi update was ejected from the {} mash.  Reason: \"{}\"",
      update_author(msg), truncate(titlestring(msg)), need(m.repo), need(m.reason))
  elseif has(t, "bodhi.update.edit") then
    return u.fmt("{} edited {}", need(m.agent), truncate(titlestring(msg)))
  elseif has(t, "bodhi.update.request") then
    local w = u.words(t)
    local status = w[#w]
    local title = titlestring(msg)
    if status == "unpush" or status == "obsolete" or status == "revoke" then
      status = status .. (u.endswith(status, "e") and "d" or "ed")
      return u.fmt("{} {} {}", m.agent, status, truncate(title))
    end
    return u.fmt("{} submitted {} to {}", m.agent, truncate(title), status)
  elseif has(t, "bodhi.mashtask.start") then
    return "bodhi masher started a push"
  elseif has(t, "bodhi.mashtask.mashing") then
    return u.fmt("bodhi masher started mashing {}", m.repo)
  elseif has(t, "bodhi.mashtask.complete") then
    local ok = need(m.success)
    if u.truthy(ok) then return u.fmt("bodhi masher successfully mashed {}", m.repo) end
    return u.fmt("bodhi masher failed to mash {}", m.repo)
  elseif has(t, "bodhi.mashtask.sync.wait") then
    return u.fmt("bodhi masher is waiting for {} to hit the master mirror", m.repo)
  elseif has(t, "bodhi.mashtask.sync.done") then
    return u.fmt("bodhi masher finished waiting for {} to hit the master mirror", m.repo)
  elseif has(t, "bodhi.compose.start") then
    return "bodhi composer started a run"
  elseif has(t, "bodhi.compose.composing") then
    return u.fmt("bodhi {} compose of repo {} started", m.ctype or "unknown type", m.repo or "unknown repo")
  elseif has(t, "bodhi.repo.done") then
    return u.fmt("bodhi repo {} created", m.repo or "unknown repo")
  elseif has(t, "bodhi.compose.complete") then
    local result = m.success
    if result == nil then result = "completed" end
    if result == true then result = "succeeded" elseif result == false then result = "failed" end
    return u.fmt("bodhi {} compose of repo {} {}", m.ctype or "unknown type", m.repo or "unknown repo", result)
  elseif has(t, "bodhi.compose.sync.wait") then
    return u.fmt("bodhi composer is waiting for {} to hit the master mirror", m.repo)
  elseif has(t, "bodhi.compose.sync.done") then
    return u.fmt("bodhi composer finished waiting for {} to hit the master mirror", m.repo)
  elseif has(t, "bodhi.buildroot_override.tag") then
    return u.fmt("{} submitted a buildroot override for {}", override_author(msg), override_nvr(msg))
  elseif has(t, "bodhi.buildroot_override.untag") then
    return u.fmt("{} expired a buildroot override for {}", override_author(msg), override_nvr(msg))
  elseif has(t, "bodhi.stack.save") then
    return u.fmt("{} updated the \"{}\" stack", need(m.agent), need(m.stack.name))
  elseif has(t, "bodhi.stack.delete") then
    return u.fmt("{} deleted the \"{}\" stack", need(m.agent), need(m.stack.name))
  elseif has(t, "bodhi.update.karma.threshold") then
    return u.fmt("{} reached the {} karma threshold", truncate(titlestring(msg)), need(m.status))
  elseif has(t, "bodhi.update.requirements_met") then
    local w = u.words(t)
    return u.fmt("{} reached the {} testing threshold", truncate(titlestring(msg)), w[#w])
  elseif has(t, "bodhi.errata.publish") then
    return m.subject
  end
  return nil
end

function P.link(msg)
  local t, m = msg.topic, msg.msg
  if any_in(t, update_topics) then
    return PREFIX .. "/updates/" .. u.str(title_or_alias(msg))
  elseif has(t, "bodhi.stack") then
    return PREFIX .. "/stacks/" .. need(m.stack.name)
  elseif has(t, "bodhi.buildroot_override") then
    return PREFIX .. "/overrides/" .. u.str(override_nvr(msg))
  elseif is_ftp_sync(t) then
    local link = "https://download.fedoraproject.org/pub/"
    local repo = need(m.repo)
    local release, modular = sync_release(msg)
    local product = sync_product(msg):lower()
    link = link .. product .. "/"
    if product == "fedora" then
      if repo == "atomic" then link = link .. "linux/atomic/" else link = link .. "linux/updates/" end
    end
    if u.endswith(repo, "testing") then link = link .. "testing/" end
    link = link .. release .. "/"
    if modular then
      link = link .. "Modular/"
    elseif release:match("^%d+$") then
      local r = tonumber(release)
      if (product == "fedora" and r > 27) or (product == "epel" and r > 7) then
        link = link .. "Everything/"
      end
    end
    return link
  end
  return PREFIX
end

local function packages(msg)
  local t, m = msg.topic, msg.msg
  if any_in(t, update_topics) then
    return u2p(titlestring(msg))
  elseif has(t, "bodhi.buildroot_override.") then
    return u2p(override_nvr(msg))
  elseif has(t, "bodhi.stack") then
    local out = {}
    for _, p in ipairs(m.stack.packages) do out[#out + 1] = need(p.name) end
    return out
  elseif has(t, "bodhi.masher.start") then
    local out = {}
    for _, up in ipairs(m.updates or {}) do
      for _, p in ipairs(u2p(up)) do out[#out + 1] = p end
    end
    return out
  end
  return {}
end
P.packages = packages

function P.usernames(msg)
  local m = msg.msg
  local users = {}
  local function add(x) if x ~= nil then users[#users + 1] = x end end
  add(comment_author(msg))
  add(update_author(msg))
  add(override_author(msg))
  if m.comment ~= nil then
    local text = need(m.comment.text)
    for name in text:gmatch("@([%w_]+)") do add(name) end
  end
  add(m.agent)
  return users
end

local function prefixed(list, prefix)
  local out = {}
  for _, p in ipairs(list) do out[#out + 1] = prefix .. p end
  return out
end

function P.objects(msg)
  local t, m = msg.topic, msg.msg
  if is_ftp_sync(t) then
    local release = sync_release(msg)
    return {sync_product(msg):lower() .. "/" .. need(m.repo) .. "/" .. release}
  elseif m.repo ~= nil and any_in(t, {"bodhi.mashtask", "bodhi.compose", "bodhi.repo.done"}) then
    return {"repos/" .. m.repo}
  elseif any_in(t, update_topics) or has(t, "bodhi.masher.start") then
    return prefixed(packages(msg), "packages/")
  elseif has(t, "bodhi.buildroot_override.") then
    return prefixed(u2p(override_nvr(msg)), "packages/")
  elseif has(t, "bodhi.stack") then
    local out = {}
    for _, p in ipairs(m.stack.packages) do out[#out + 1] = "packages/" .. need(p.name) end
    out[#out + 1] = "stacks/" .. need(m.stack.name)
    return out
  end
  return {}
end
