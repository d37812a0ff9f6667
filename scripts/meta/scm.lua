-- Dist-git (org.fedoraproject.*.git.*): pushes, branches, lookaside uploads,
-- pkgdb2branch and mass branch runs.
local u = util
local F = u.format

local P = processor{name = "git", entry = "scm", obj = "Package Commits",
  icon = "https://apps.fedoraproject.org/img/icons/git-logo.png"}

local function has(t, s) return u.contains(t, s) end
local function req(v) if v == nil then error("missing field", 2) end return v end

-- The repo of a legacy topic: the words between the 6th and the last.
local function topic_repo(msg) return u.topic_words(msg, 6, -2) end

local function commit_repo(msg)
  local r = req(msg.msg.commit).repo
  if r == nil then return topic_repo(msg) end
  return r
end

function P.secondary_icon(msg)
  local m, t = msg.msg, msg.topic
  if has(t, ".git.receive") then
    local c = req(m.commit)
    if c.username ~= nil then return u.avatar_url(c.username) end
    return u.avatar_url_from_email(req(c.email))
  elseif has(t, ".git.lookaside") then
    return u.avatar_url(req(m.agent))
  elseif m.agent ~= nil then
    return u.avatar_url(m.agent)
  end
  return nil
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  if has(t, ".git.receive") then
    local c = req(m.commit)
    local v = {repo = commit_repo(msg), namespace = ""}
    if c.namespace ~= nil then v.namespace = c.namespace .. "/" end
    v.user = c.username
    if v.user == nil then v.user = req(c.email) end
    local summ, whole = req(c.summary), req(c.message)
    if u.strip(summ) ~= u.strip(whole) then summ = summ .. " (..more)" end
    v.summary, v.branch = summ, req(c.branch)
    return F('{user} pushed to {namespace}{repo} ({branch}).  "{summary}"', v)
  elseif has(t, ".git.branch") then
    local v = {}
    if m.name ~= nil and m.branch ~= nil then
      v.repo, v.branch = m.name, m.branch
    else
      local w = u.words(t)
      v.repo, v.branch = topic_repo(msg), w[#w]
    end
    if type(m.commit) == "table" and m.commit.namespace ~= nil then v.repo = m.commit.namespace .. "/" .. v.repo end
    v.agent = req(m.agent)
    return F("{agent} created branch '{branch}' for the '{repo}' package", v)
  elseif has(t, ".git.lookaside") then
    return F("{agent} uploaded {filename} for {name}", {name = req(m.name), agent = req(m.agent), filename = req(m.filename)})
  end
  local tmpl
  if has(t, ".git.mass_branch.start") then tmpl = "{agent} started a mass branch"
  elseif has(t, ".git.mass_branch.complete") then tmpl = "mass branch started by {agent} completed"
  elseif has(t, ".git.pkgdb2branch.start") then tmpl = "{agent} started a run of pkgdb2branch"
  elseif has(t, ".git.pkgdb2branch.complete") then
    local errors = u.len(m.unbranchedPackages or {})
    if errors == 0 then tmpl = "run of pkgdb2branch started by {agent} completed"
    elseif errors == 1 then tmpl = "run of pkgdb2branch started by {agent} completed with 1 error"
    else tmpl = "run of pkgdb2branch started by {agent} completed with " .. errors .. " errors" end
  else
    return nil
  end
  local agent = m.agent
  if agent == nil then agent = "(somebody)" end
  return F(tmpl, {agent = agent})
end

function P.link(msg)
  local m, t = msg.msg, msg.topic
  local prefix = "https://src.fedoraproject.org"
  if has(t, ".git.receive") then
    local c = req(m.commit)
    return F("{prefix}/{namespace}/{repo}/c/{rev}?branch={branch}", {prefix = prefix,
      namespace = c.namespace or "rpms", repo = commit_repo(msg), rev = req(c.rev), branch = req(c.branch)})
  elseif has(t, ".git.branch") then
    local repo, branch
    if m.name ~= nil and m.branch ~= nil then repo, branch = m.name, m.branch
    else
      local w = u.words(t)
      repo, branch = topic_repo(msg), w[#w]
    end
    return F("{prefix}/{namespace}/{repo}/commits/{branch}", {prefix = prefix,
      namespace = m.namespace or "rpms", repo = repo, branch = branch})
  elseif has(t, ".git.lookaside") then
    local path = m.path
    if path == nil then
      path = F("{name}/{filename}/{md5sum}/{filename}", {name = req(m.name), md5sum = req(m.md5sum), filename = req(m.filename)})
    end
    return "https://src.fedoraproject.org/lookaside/pkgs/" .. path
  end
  return nil
end

function P.usernames(msg)
  local m = msg.msg
  if m.agent ~= nil then return {m.agent} end
  if req(m.commit).username ~= nil then return {m.commit.username} end
  return {}
end

local function packages(msg)
  local m, t = msg.msg, msg.topic
  if type(m.commit) == "table" and m.commit.namespace ~= nil then
    local ns = m.commit.namespace
    if ns ~= "rpms" and ns ~= "rpms-checks" then return {} end
  end
  if has(t, "git.receive") then
    if type(m.commit) == "table" and m.commit.repo ~= nil then return {m.commit.repo} end
    return {topic_repo(msg)}
  end
  if has(t, "git.branch") then
    if m.name ~= nil then return {m.name} end
    return {topic_repo(msg)}
  elseif has(t, ".git.pkgdb2branch.complete") then
    local out = {}
    for _, k in ipairs({"unbranchedPackages", "branchedPackages"}) do
      for _, p in ipairs(m[k] or {}) do out[#out + 1] = p end
    end
    return out
  elseif has(t, ".git.lookaside") then
    return {req(m.name)}
  end
  return {}
end
P.packages = packages

function P.objects(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "git.receive") then
    local repo = commit_repo(msg)
    local out = {}
    for file in pairs(req(m.commit.stats).files) do out[#out + 1] = repo .. "/" .. file end
    return out
  elseif has(t, ".git.branch") then
    local repo = m.name
    if repo == nil then repo = topic_repo(msg) end
    return {repo .. "/__git__"}
  elseif has(t, ".git.pkgdb2branch.complete") then
    local out = {}
    for _, p in ipairs(packages(msg)) do out[#out + 1] = p .. "/__git__" end
    return out
  elseif has(t, ".git.lookaside") then
    return {req(m.name) .. "/" .. req(m.filename)}
  end
  return {}
end
