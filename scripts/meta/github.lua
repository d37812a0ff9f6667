-- GitHub repositories bridged to the bus (org.fedoraproject.*.github.*).
local u = util
local F = u.format

local ICON = "https://apps.fedoraproject.org/img/icons/github.png"
local P = processor{name = "github", entry = "github", obj = "Github Events", icon = ICON}

local function has(t, s) return u.contains(t, s) end
local function req(v) if v == nil then error("missing field", 2) end return v end

-- The acting GitHub login, mapped to a Fedora account through fas_usernames.
local function get_user(m)
  local function map(login)
    local fu = req(m.fas_usernames)
    local name = fu[login]
    if name == nil then return login end
    return name
  end
  if u.truthy(m.commit) then
    local user = m.commit.author
    if u.truthy(user) then user = user.login end
    if u.truthy(user) then return map(user) end
  end
  if u.truthy(m.pusher) then return map(req(m.pusher.name)) end
  if u.truthy(m.sender) then return map(req(m.sender.login)) end
  if u.truthy(m.forkee) then return map(req(m.forkee.owner.login)) end
  return nil
end

local function get_repo(m)
  local r = m.repository
  if type(r) ~= "table" or type(r.owner) ~= "table" or r.name == nil then return nil end
  if r.owner.login ~= nil then return r.owner.login .. "/" .. r.name end
  if r.owner.name == nil then return nil end
  return r.owner.name .. "/" .. r.name
end

function P.link(msg)
  local m, t = msg.msg, msg.topic
  if has(t, "github.deployment_status") then return m.deployment_status.target_url end
  if has(t, "github.watch") then return m.repository.html_url .. "/watchers" end
  if has(t, "github.star") then return m.repository.html_url .. "/stargazers" end
  if has(t, "github.page_build") then
    local p = u.split(m.repository.html_url, "/")
    return "http://" .. p[#p - 1] .. ".github.io/" .. p[#p] .. "/"
  end
  for _, k in ipairs({"release", "target_url", "compare", "comment", "review", "pull_request", "issue", "forkee", "repository"}) do
    if m[k] ~= nil then
      if type(m[k]) == "table" then return m[k].html_url end
      return m[k]
    end
  end
  return nil
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local v = {user = get_user(m), repo = get_repo(m)}
  if has(t, "github.webhook") then
    return "A new github repository has been added to fedmsg"
  elseif has(t, "github.deployment_status") then
    v.status = m.deployment_status.state
    return F("{user}'s deployment status for {repo} updated to \"{status}\"", v)
  elseif has(t, "github.push") then
    v.n = u.len(req(m.commits))
    return F("{user} pushed {n} commit(s) to {repo}", v)
  elseif has(t, "github.pull_request.") then
    v.action, v.n = req(m.action), req(m.number)
    if v.action == "synchronize" then v.action = "synchronized" end
    if v.action == "opened" then
      v.title = m.pull_request.title
      return F("{user} {action} pull request #{n} on {repo}: {title}", v)
    end
    return F("{user} {action} pull request #{n} on {repo}", v)
  elseif has(t, "github.issue.") then
    if m.comment ~= nil then v.action = "commented on" else v.action = req(m.action) end
    v.n = m.number
    if v.n == nil then v.n = req(m.issue.number) end
    if v.action == "opened" then
      v.title = m.issue.title
      return F("{user} {action} issue #{n} on {repo}: {title}", v)
    elseif v.action == "labeled" then
      v.label = m.label.name
      return F("{user} added label {label} to issue #{n} on {repo}", v)
    end
    return F("{user} {action} issue #{n} on {repo}", v)
  elseif has(t, "github.pull_request_review") and not has(t, "github.pull_request_review_comment") then
    v.n, v.state = m.pull_request.number, m.review.state
    local tmpl
    if v.state == "pending" then tmpl = "{user} commented on PR #{n} on {repo} which is in {state} state" end
    if v.state == "approved" then tmpl = "{user} {state} the changes on PR #{n} on {repo}" end
    if v.state == "changes_requested" then v.state = "requested changes"; tmpl = "{user} {state} on PR #{n} on {repo}" end
    if v.state == "commented" then tmpl = "{user} {state} on PR #{n} on {repo}" end
    return F(req(tmpl), v)
  elseif has(t, "github.pull_request_review_comment") then
    v.n = m.pull_request.number
    return F("{user} commented on PR #{n} on {repo}", v)
  elseif has(t, "github.commit_comment") then
    return F("{user} commented on a commit on {repo}", v)
  elseif has(t, "github.create") then
    v.typ, v.ref = req(m.ref_type), req(m.ref)
    return F('{user} created a new {typ} "{ref}" at {repo}', v)
  elseif has(t, "github.delete") then
    v.typ, v.ref = req(m.ref_type), req(m.ref)
    return F('{user} deleted the "{ref}" {typ} at {repo}', v)
  elseif has(t, "github.fork") then
    return F("{user} forked {repo}", v)
  elseif has(t, "github.status") then
    v.description, v.sha = req(m.description), m.sha:sub(1, 8)
    return F("{description} for {repo} {sha}", v)
  elseif has(t, "github.watch") then
    v.action = req(m.action)
    return F("{user} {action} watching {repo}", v)
  elseif has(t, "github.star") then
    v.action = (req(m.action) == "started") and "starred" or "unstarred"
    return F("{user} {action} {repo}", v)
  elseif has(t, "github.release") then
    v.version = m.release.tag_name
    v.repo = u.split(v.repo, "/", 1)[2]
    return F("{user} cut a release of {repo}, version {version}", v)
  elseif has(t, "github.page_build") then
    return F("{user} rebuilt the github.io page for {repo}", v)
  elseif has(t, "github.team_add") then
    v.team = m.team.slug
    return F("The '{team}' team was added to the {repo} repository", v)
  elseif has(t, "github.member") then
    v.member = m.member.login
    if m.action == "added" then return F("{user} added {member} as a member of {repo}", v) end
    return F("{user} removed member {member} from {repo}", v)
  end
  return nil
end

function P.secondary_icon(msg)
  if has(msg.topic, "github.webhook") then return ICON end
  return u.avatar_url(u.str(get_user(msg.msg)))
end

function P.usernames(msg)
  local out = {}
  for _, name in pairs(req(msg.msg.fas_usernames)) do
    if not u.startswith(name, "github_org_") then out[#out + 1] = name end
  end
  return out
end

local lookup = {
  ["github.push"] = "tree", ["github.issue"] = "issues", ["github.fork"] = "forks",
  ["github.status"] = "status", ["github.pull_request"] = "pull",
  ["github.pull_request_review"] = "pull", ["github.pull_request_review_comment"] = "pull",
  ["github.commit_comment"] = "tree", ["github.release"] = "releases",
  ["github.create"] = false, ["github.delete"] = false, ["github.watch"] = false, ["github.star"] = false,
  ["github.page_build"] = "page_build", ["github.team_add"] = "team_add",
  ["github.member"] = "member", ["github.deployment_status"] = "deployment_status",
}

function P.objects(msg)
  local m = msg.msg
  local suffix = u.topic_words(msg, 4, 5)
  local sub = lookup[suffix]
  if sub == nil then return {} end
  local base = get_repo(m)
  if base == nil then error("no repository") end
  if sub then base = base .. "/" .. sub end
  local items = {}
  if m.commits ~= nil then
    for _, c in ipairs(m.commits) do
      items = {}
      for _, k in ipairs({"added", "removed", "modified"}) do
        for _, f in ipairs(req(c[k])) do items[#items + 1] = f end
      end
    end
  elseif suffix == "github.pull_request" then items = {u.str(req(m.number))}
  elseif suffix == "github.issue" then
    local n = m.number
    if n == nil then n = req(m.issue.number) end
    items = {u.str(n)}
  elseif has(suffix, "github.pull_request_review") then items = {u.str(m.pull_request.number)}
  elseif suffix == "github.fork" then items = {u.str(get_user(m))}
  elseif suffix == "github.create" or suffix == "github.delete" then items = {req(m.ref_type) .. "/" .. req(m.ref)}
  elseif suffix == "github.status" then items = {req(m.commit.sha)}
  elseif suffix == "github.commit_comment" then items = {req(m.comment.path)}
  elseif suffix == "github.release" then items = {req(m.release.tag_name)}
  elseif suffix == "github.watch" then items = {"watchers"}
  elseif suffix == "github.star" then items = {"stargazers"}
  end
  if #items == 0 then return {base} end
  local out = {}
  for _, i in ipairs(items) do out[#out + 1] = base .. "/" .. i end
  return out
end
