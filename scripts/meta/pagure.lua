-- Pagure forges: pagure.io (io.pagure.*) and dist-git
-- (src.fedoraproject.org, org.fedoraproject.*.pagure.*).
local u = util

local ICON = "https://apps.fedoraproject.org/packages/images/icons/package_128x128.png"

-- "name", "ns/name" or "fork/user/ns/name" of t[key].
local function get_project(t, key)
  local p = t[key or "project"]
  local name = p.name
  if name == nil then error("no name") end
  if u.truthy(p.namespace) then name = p.namespace .. "/" .. name end
  if u.truthy(p.parent) then name = "fork/" .. p.user.name .. "/" .. name end
  return name
end

local function project_of(m)
  local ok, p = pcall(get_project, m)
  if ok then return p end
  if type(m.pullrequest) == "table" then
    ok, p = pcall(get_project, m.pullrequest)
    if ok then return p end
  end
  return "(unknown)"
end

local function pr_key(m)
  for _, k in ipairs({"pullrequest", "pull_request", "pull-request"}) do
    if m[k] ~= nil then return k end
  end
  return "pullrequest"
end

local function strip_heads(b) return u.replace(b, "refs/heads/", "") end

-- subtitle rules: {topic substring, function(m, v) -> text}, in order.
-- v holds user (the agent) and project.
local F = u.format
local function series(l) return u.list_to_series(l) end
local subtitles = {
  {"pagure.project.new", function(m, v) return F('{user} created a new project "{project}"', v) end},
  {"pagure.issue.new", function(m, v)
    v.id, v.title = m.issue.id, m.issue.title
    return F('{user} opened a new ticket {project}#{id}: "{title}"', v) end},
  {"pagure.issue.drop", function(m, v)
    v.id, v.title = m.issue.id, m.issue.title
    return F('{user} deleted ticket {project}#{id}: "{title}"', v) end},
  {"pagure.issue.comment.edited", function(m, v)
    v.id, v.title = m.issue.id, m.issue.title
    return F('{user} edited a comment on ticket {project}#{id}: "{title}"', v) end},
  {"pagure.issue.comment.added", function(m, v)
    v.id, v.title = m.issue.id, m.issue.title
    return F('{user} commented on ticket {project}#{id}: "{title}"', v) end},
  {"pagure.issue.tag.added", function(m, v)
    v.id, v.tags = m.issue.id, series(m.tags)
    return F('{user} tagged ticket {project}#{id}: {tags}', v) end},
  {"pagure.issue.tag.removed", function(m, v)
    v.id, v.tags = m.issue.id, series(m.tags)
    return F('{user} removed the {tags} tags from ticket {project}#{id}', v) end},
  {"pagure.pull-request.tag.added", function(m, v)
    v.id, v.tags = m.pull_request.id, series(m.tags)
    return F('{user} tagged pull-request {project}#{id}: {tags}', v) end},
  {"pagure.pull-request.tag.removed", function(m, v)
    v.id, v.tags = m.pull_request.id, series(m.tags)
    return F('{user} removed the {tags} tags from pull-request {project}#{id}', v) end},
  {"pagure.issue.assigned.added", function(m, v)
    v.id, v.assignee = m.issue.id, ""
    if u.truthy(m.issue.assignee) then v.assignee = " to " .. u.str(m.issue.assignee.name) end
    return F('{user} assigned ticket {project}#{id}{assignee}', v) end},
  {"pagure.issue.assigned.reset", function(m, v)
    v.id = m.issue.id
    return F('{user} reset the assignee of ticket {project}#{id}', v) end},
  {"pagure.issue.dependency.added", function(m, v)
    v.id, v.dep = m.issue.id, m.added_dependency
    return F('{user} added ticket {project}#{id} as a dependency of ticket {project}#{dep}', v) end},
  {"pagure.issue.dependency.removed", function(m, v)
    v.id, v.dep = m.issue.id, m.removed_dependency
    return F('{user} removed ticket {project}#{id} as a dependency of ticket {project}#{dep}', v) end},
  {"pagure.issue.edit", function(m, v)
    v.id = m.issue.id
    local fields = m.fields
    if fields == nil then error("no fields") end
    if #fields == 1 and fields[1] == "status" then
      v.status = m.issue.status
      return F('{user} set the status of ticket {project}#{id} to: {status}', v)
    end
    v.fields = series(fields)
    return F('{user} edited the {fields} fields of ticket {project}#{id}', v) end},
  {"pagure.project.edit", function(m, v)
    v.fields = series(m.fields)
    return F('{user} edited the {fields} fields of project {project}', v) end},
  {"pagure.project.group.added", function(m, v)
    v.new_group, v.access = m.new_group, m.access
    if v.new_group == nil then error("no new_group") end
    if u.truthy(v.access) then
      return F('{user} added group "{new_group}" to project {project} with {access} access', v)
    end
    return F('{user} added group "{new_group}" to project {project}', v) end},
  {"pagure.project.group.access.updated", function(m, v)
    v.new_group, v.new_access = m.new_group, m.new_access
    return F('{user} updated access of group "{new_group}" to {new_access} on project {project}', v) end},
  {"pagure.project.user.added", function(m, v)
    v.new_user, v.access = m.new_user, m.access
    if v.new_user == nil then error("no new_user") end
    if u.truthy(v.access) then
      return F('{user} added "{new_user}" to project {project} with {access} access', v)
    end
    return F('{user} added "{new_user}" to project {project}', v) end},
  {"pagure.project.user.access.updated", function(m, v)
    v.new_user, v.new_access = m.new_user, m.new_access
    return F('{user} updated access of "{new_user}" to {new_access} in project {project}', v) end},
  {"pagure.project.tag.removed", function(m, v)
    v.tags = series(m.tags)
    return F('{user} removed tags "{tags}" from project {project}', v) end},
  {"pagure.project.tag.edited", function(m, v)
    v.old_tag, v.new_tag = m.old_tag, m.new_tag
    return F('{user} altered tags on project {project} from "{old_tag}" to "{new_tag}"', v) end},
  {"pagure.project.forked", function(m, v)
    v.old = m.project.parent.name
    return F('{user} forked {old} to {project}', v) end},
  {"pagure.pull-request.comment.added", function(m, v)
    v.id = m.pullrequest.id
    return F('{user} commented on PR #{id} on {project}', v) end},
  {"pagure.pull-request.comment.edited", function(m, v)
    v.id = m.pullrequest.id
    return F('{user} edited a comment on PR #{id} on {project}', v) end},
  {"pagure.pull-request.closed", function(m, v)
    v.id = m.pullrequest.id
    if m.merged == nil then error("no merged") end
    if u.truthy(m.merged) then return F('{user} merged pull request #{id} on {project}', v) end
    return F('{user} closed (without merging) pull request #{id} on {project}', v) end},
  {"pagure.pull-request.new", function(m, v)
    v.id, v.title = m.pullrequest.id, m.pullrequest.title
    return F('{user} opened pull request #{id} on {project}: {title}', v) end},
  {"pagure.pull-request.updated", function(m, v)
    v.id = m.pullrequest.id
    return F('Pull-request #{id} has been updated', v) end},
  {"pagure.pull-request.rebased", function(m, v)
    v.id = m.pullrequest.id
    return F('Pull-request #{id} has been rebased', v) end},
  {"pagure.pull-request.flag.added", function(m, v)
    v.id, v.username, v.comment = m.pullrequest.id, m.flag.username, m.flag.comment
    return F('{username} flagged {project}#{id} with "{comment}"', v) end},
  {"pagure.pull-request.flag.updated", function(m, v)
    v.id, v.username, v.comment = m.pullrequest.id, m.flag.username, m.flag.comment
    return F('{username} updated the flags on {project}#{id} with: "{comment}"', v) end},
  {"pagure.request.assigned.added", function(m, v)
    v.id, v.assignee = m.request.id, ""
    if u.truthy(m.request.assignee) then v.assignee = " to " .. u.str(m.request.assignee.name) end
    return F('{user} assigned PR {project}#{id}{assignee}', v) end},
  {"pagure.request.assigned.reset", function(m, v)
    v.id = m.request.id
    return F('{user} reset the assignee of PR {project}#{id}', v) end},
  {"pagure.git.receive", function(m, v)
    if m.commit ~= nil then
      local c = m.commit
      local email = c.email
      if email == nil then error("no email") end
      local summ, whole = c.summary, c.message
      if u.strip(summ) ~= u.strip(whole) then summ = summ .. " (..more)" end
      local user = u.email2fas(email)
      if not u.truthy(user) then user = email end
      return F('{user} pushed to {repo} ({branch}). "{summary}"',
        {user = user, repo = get_project(c, "repo"), branch = strip_heads(c.branch), summary = summ})
    end
    local n = m.total_commits
    if n == nil then error("no total_commits") end
    return F('{user} pushed {n} {lbl} to {repo} ({branch})', {
      user = m.agent, repo = get_project(m, "repo"), branch = strip_heads(m.branch),
      n = n, lbl = (u.str(n) == "1") and "commit" or "commits"})
  end},
  {"pagure.project.deleted", function(m, v) return F('{user} deleted the project "{project}"', v) end},
  {"pagure.commit.flag.added", function(m, v)
    return F('{user} added a flag on the commit {commit} of the project {project}',
      {user = m.flag.username, project = get_project(m, "repo"), commit = m.flag.commit_hash:sub(1, 8)}) end},
  {"pagure.commit.flag.updated", function(m, v)
    return F('{user} updated its flag on the commit {commit} of the project {project}',
      {user = m.flag.username, project = get_project(m, "repo"), commit = m.flag.commit_hash:sub(1, 8)}) end},
  {"pagure.project.user.removed", function(m, v)
    v.removed_user = m.removed_user
    if v.removed_user == nil then error("no removed_user") end
    return F('{user} removed "{removed_user}" from the project {project}', v) end},
}

local function forge(spec)
  local P = processor(spec)
  local link, stg_link = spec.home, spec.stg_home

  function P.subtitle(msg)
    local m, t = msg.msg, msg.topic
    local v = {user = m.agent, project = project_of(m)}
    for _, rule in ipairs(subtitles) do
      if u.contains(t, rule[1]) then return rule[2](m, v) end
    end
    return nil
  end

  function P.link(msg)
    local m, t = msg.msg, msg.topic
    local project = project_of(m)
    local base = link
    if u.contains(t, ".stg.") then base = stg_link end
    local pre = base .. "/" .. project
    if u.contains(t, "pagure.issue") then
      local id = u.str(m.issue.id)
      if u.contains(t, "comment.edited") then
        local cid = u.truthy(m.comment) and m.comment.id or nil
        if u.truthy(cid) and project ~= "(unknown)" then
          return pre .. "/issue/" .. id .. "#comment-" .. u.str(cid)
        elseif project ~= "(unknown)" then
          return pre .. "/issue/" .. id
        end
        return base
      elseif u.contains(t, "comment.added") then
        local comments = m.issue.comments
        if comments == nil then error("no comments") end
        if u.truthy(comments) then
          return pre .. "/issue/" .. id .. "#comment-" .. u.str(comments[#comments].id)
        end
      end
      return pre .. "/issue/" .. id
    elseif u.contains(t, "pagure.pull-request") then
      local id = u.str(m[pr_key(m)].id)
      if u.contains(t, "comment") then
        local comments = m.pullrequest.comments
        if comments == nil then error("no comments") end
        if u.truthy(comments) then
          return pre .. "/pull-request/" .. id .. "#comment-" .. u.str(comments[#comments].id)
        elseif u.truthy(m.comment) then
          return pre .. "/pull-request/" .. id .. "#comment-" .. u.str(m.comment.id)
        end
      end
      return pre .. "/pull-request/" .. id
    elseif u.contains(t, "pagure.request") then
      return pre .. "/pull-request/" .. u.str(m.request.id)
    elseif u.contains(t, "pagure.project.deleted") then
      return base
    elseif u.contains(t, "pagure.project") then
      return pre
    elseif u.contains(t, "pagure.commit.flag") then
      return base .. "/" .. get_project(m, "repo") .. "/c/" .. u.str(m.flag.commit_hash)
    elseif u.contains(t, "pagure.git.receive") then
      if m.commit ~= nil then
        return base .. "/" .. get_project(m.commit, "repo") .. "/" .. u.str(m.commit.rev)
      end
      return base .. "/" .. get_project(m, "repo") .. "/tree/" .. strip_heads(m.branch)
    end
    return base
  end

  function P.secondary_icon(msg)
    local user = msg.msg.agent
    if u.truthy(user) then return u.avatar_url(user) end
    return nil
  end

  function P.usernames(msg)
    local user = msg.msg.agent
    if not u.truthy(user) and u.contains(msg.topic, "pagure.git.receive") then
      local email = msg.msg.commit.email
      if email == nil then error("no email") end
      user = u.email2fas(email)
    end
    if u.truthy(user) then return {user} end
    return {}
  end

  function P.objects(msg)
    local m, t = msg.msg, msg.topic
    local project = project_of(m)
    if u.contains(t, "pagure.project") then
      return {"project/" .. project}
    elseif u.contains(t, "pagure.issue") then
      return {"issue/" .. u.str(m.issue.id), "project/" .. project}
    elseif u.contains(t, "pagure.pull-request") then
      return {"pull-request/" .. u.str(m[pr_key(m)].id), "project/" .. project}
    elseif u.contains(t, "pagure.request") then
      return {"pull-request/" .. u.str(m.request.id), "project/" .. project}
    elseif u.contains(t, "pagure.git.receive") then
      if m.commit ~= nil then return {"project/" .. get_project(m.commit, "repo")} end
      return {"project/" .. get_project(m, "repo")}
    elseif u.contains(t, "pagure.commit.flag") then
      return {"project/" .. get_project(m, "repo")}
    end
    return {}
  end
  return P
end

forge{name = "pagure", entry = "pagure", prefix = [[io\.pagure\.(dev|stg|prod)]],
  obj = "Pagure forge", icon = ICON, home = "https://pagure.io", stg_home = "https://stg.pagure.io"}
forge{name = "pagure", entry = "pagure_distgit", obj = "Pagure over Dist-git", icon = ICON,
  home = "https://src.fedoraproject.org", stg_home = "https://src.stg.fedoraproject.org"}
