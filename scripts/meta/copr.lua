-- Copr, the community build service (org.fedoraproject.*.copr.*).
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "Copr", entry = "coprs", obj = "Extra Repository Updates",
  icon = "https://apps.fedoraproject.org/img/icons/copr.png"}

local statuses = {[0] = "failed", [1] = "success", [3] = "running", [5] = "skipped"}

-- Older messages name the package without its version and the copr's
-- owner "user": read them as the newer ones.
local function fields(m)
  local pkg, owner = m.pkg, m.owner
  if u.truthy(pkg) and u.truthy(m.version) and type(pkg) == "string" and
      not u.contains(pkg, u.str(m.version)) then
    pkg = pkg .. "-" .. u.str(m.version)
  end
  if owner == nil then owner = m.user end
  return pkg, owner
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local pkg = fields(m)
  local v = {user = m.user, copr = m.copr, chroot = m.chroot, pkg = pkg,
    status = statuses[m.status] or "unknown"}
  local tmpl
  if has(t, "copr.build.start") then
    tmpl = u.truthy(m.user) and "{user} started a new build of the {copr} copr"
      or "Automated build of the {copr} copr has been started"
  elseif has(t, "copr.build.end") then
    tmpl = u.truthy(m.user) and "{user}'s {copr} copr build of {pkg} for {chroot} finished with '{status}'"
      or "Automated {copr} copr build of {pkg} for {chroot} finished with '{status}'"
  elseif has(t, "copr.chroot.start") then
    tmpl = "{user}'s {copr} copr started a new {chroot} chroot"
  elseif has(t, "copr.worker.create") then
    tmpl = "a new worker was created"
  else
    error("unknown copr topic")
  end
  return F(tmpl, v)
end

function P.link(msg)
  local m, t = msg.msg, msg.topic
  local _, user = fields(m)
  if type(user) == "string" and u.startswith(user, "@") then user = u.replace(user, "@", "g/") end
  local v = {user = user, copr = m.copr, chroot = m.chroot, build = m.build}
  if has(t, "chroot") then
    return F("https://copr-be.cloud.fedoraproject.org/results/{user}/{copr}/{chroot}/", v)
  elseif has(t, "build") then
    return F("https://copr.fedoraproject.org/coprs/{user}/{copr}/build/{build}/", v)
  end
  return "https://copr.fedoraproject.org"
end

function P.secondary_icon(msg)
  local user = msg.msg.user
  if user == nil then return nil end
  return u.avatar_url(user)
end

function P.usernames(msg)
  local m = msg.msg
  return u.collect({m.user or false, m.owner or false}, u.truthy)
end

function P.objects(msg)
  local m = msg.msg
  local items = {"coprs"}
  if m.copr ~= nil then items[#items + 1] = u.str(m.copr) end
  items[#items + 1] = u.topic_words(msg, -2)
  if has(msg.topic, "chroot") then items[#items + 1] = u.str(u.req(m.chroot)) end
  return {table.concat(items, "/")}
end
