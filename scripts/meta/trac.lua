-- Trac instances on fedorahosted.org (org.fedoraproject.*.trac.*):
-- wiki pages, tickets and git pushes.
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "Trac", entry = "trac", obj = "Fedora Hosted Events",
  icon = "https://www.edgewall.org/gfx/trac_bullet.png"}

-- Repositories whose cgit URL has no ".git" suffix.
local bare_repos = {}
for name in ([[389 aeolus bluecurve bluecurve-classic-metacity-theme
  bluecurve-gdm-theme bluecurve-gnome-theme bluecurve-gtk-themes
  bluecurve-icon-theme bluecurve-kde-theme bluecurve-kdm-theme
  bluecurve-kwin-theme bluecurve-metacity-theme bluecurve-qt-engine
  bluecurve-xmms-skin cobbler deltacloud docs echo-icon-theme
  fedorabubbles-gdm-theme fedoradna-gdm-theme fedoradna-kdm-theme
  fedoraflyinghigh-gdm-theme fedoraflyinghigh-kdm-theme fedora-gnome-theme
  fedora-icon-theme fedorainfinity-gdm-theme fedorainfinity-screensaver-theme
  fedora-screensaver-theme freeotp grid koji l10n livecd mash mirrormanager
  mkinitrd nodoka opyum ovirt presto readahead redhat-rpm-config releng
  revisor rhq snake thetango thincrust umltester updatinator webauthinfra
  wevisor]]):gmatch("%S+") do bare_repos[name] = true end

-- The repository of a git push: from commit.path (/srv/git/<name>.git...)
-- in newer messages, commit.repo in older ones.
local function repo_name(m)
  local c = u.req(m.commit)
  if c.path ~= nil then
    return u.split(c.path, ".git")[1]:sub(10)
  end
  return u.req(c.repo)
end

local wiki_tmpls = {
  {"page.version.delete", "{user} deleted a version of the '{name}' wiki page on the {project} trac instance"},
  {"page.delete", "{user} straight-up deleted the '{name}' wiki page on the {project} trac instance"},
  {"page.rename", "{user} renamed the wiki page '{old_name}' to '{name}' on the {project} trac instance"},
  {"page.update", "{user} updated the '{name}' wiki page on the {project} trac instance"},
  {"page.new", "{user} created a new '{name}' wiki page on the {project} trac instance"},
}

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  if m.page ~= nil then
    local v = {user = u.req(m.agent), name = u.req(m.page.name), project = u.req(m.instance.project_name)}
    for _, w in ipairs(wiki_tmpls) do
      if has(t, w[1]) then
        if w[1] == "page.rename" then v.old_name = u.req(m.old_name) end
        return F(w[2], v)
      end
    end
    error("unknown wiki event")
  elseif m.ticket ~= nil then
    local v = {user = u.req(m.agent), project = u.req(m.instance.project_name)}
    local tmpl
    if has(t, "ticket.delete") then
      tmpl = "{user} straight-up deleted a ticket on the {project} trac instance"
    elseif has(t, "ticket.new") then
      tmpl = "{user} opened a new ticket on the {project} trac instance"
    elseif has(t, "ticket.update") then
      tmpl = "{user} updated a ticket on the {project} trac instance"
      local status = u.req(m.ticket.status)
      local old = u.req(m.old_values)
      if status == "reopened" and old.status ~= nil then
        tmpl = "{user} reopened a ticket on the {project} trac instance"
      elseif status == "closed" and old.status ~= nil then
        v.resolution = u.req(m.ticket.resolution)
        tmpl = "{user} closed a ticket on the {project} trac instance as '{resolution}'"
      end
    else
      error("unknown ticket event")
    end
    return F(tmpl, v)
  elseif has(t, "git.receive") then
    return F("{user} pushed some commits to the '{project}' fedorahosted git repository",
      {user = u.req(m.commit.username), project = repo_name(m)})
  end
  return nil
end

function P.secondary_icon(msg)
  local m = msg.msg
  local user = m.agent
  local c = u.get(m, "commit", "username")
  if c ~= nil then user = c end
  if not u.truthy(user) then return "" end
  return u.avatar_url(user)
end

local function add_stripped(out, v)
  if type(v) == "string" then
    v = u.strip(v)
    if v ~= "" then out[#out + 1] = v end
  end
end

function P.usernames(msg)
  local m = msg.msg
  local out = {}
  if m.agent ~= nil then out[1] = m.agent end
  add_stripped(out, u.get(m, "page", "author"))
  add_stripped(out, u.get(m, "ticket", "owner"))
  add_stripped(out, u.get(m, "ticket", "reporter"))
  local cc = u.get(m, "ticket", "cc")
  if type(cc) == "string" then
    for _, x in ipairs(u.split(cc, ",")) do add_stripped(out, x) end
  end
  add_stripped(out, u.get(m, "commit", "username"))
  return out
end

function P.objects(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "trac.wiki.page.rename") then
    local p = u.req(m.instance.project_name)
    return {p .. "/wiki/" .. u.req(m.page.name), p .. "/wiki/" .. u.req(m.old_name)}
  elseif has(t, "trac.wiki.") then
    return {u.req(m.instance.project_name) .. "/wiki/" .. u.req(m.page.name)}
  elseif has(t, "trac.ticket.") then
    return {u.req(m.instance.project_name) .. "/ticket/" .. u.str(u.req(m.ticket.id))}
  elseif has(t, ".git.receive") then
    local files = u.req(m.commit.stats.files)
    local project = repo_name(m)
    local out = {}
    for _, f in ipairs(u.keys(files)) do out[#out + 1] = project .. "/git/" .. f end
    return out
  end
  return nil
end

function P.link(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "trac.wiki.") then
    local url = u.strip_chars(u.req(m.instance.base_url), "/") .. "/wiki/" .. u.req(m.page.name)
    local version = m.page.version
    if u.truthy(version) and not has(t, ".rename") and not has(t, ".new") then
      url = url .. "?action=diff&version=" .. u.int(version)
    end
    return url
  elseif has(t, "trac.ticket.") then
    return u.strip_chars(u.req(m.instance.base_url), "/") .. "/ticket/" .. u.str(u.req(m.ticket.id))
  elseif has(t, ".git.receive") then
    local name = repo_name(m)
    local suffix = bare_repos[name] and "" or ".git"
    return "https://git.fedorahosted.org/cgit/" .. name .. suffix .. "/commit/?id=" .. u.str(u.req(m.commit.rev))
  end
  return nil
end
