-- Pushes to Fedora Infrastructure's git repositories (org.fedoraproject.*.infragit.*).
local u = util

local P = processor{name = "infragit", entry = "infragit", obj = "Infrastructure Commits",
  icon = "https://apps.fedoraproject.org/img/icons/git-logo.png"}

local function commit(msg) return u.req(msg.msg.commit) end

-- The repository is the last component of the commit's path.
local function repo(msg)
  local parts = u.split(u.req(commit(msg).path), "/")
  return parts[#parts]
end

-- The pusher is the agent (this processor defines one).
function P.agent(msg) return u.req(commit(msg).username) end

function P.subtitle(msg)
  local c = commit(msg)
  local summ = u.req(c.summary)
  if u.strip(summ) ~= u.strip(u.req(c.message)) then summ = summ .. " (..more)" end
  return u.format('{user} pushed a commit to the fedora-infra {repo} repo ({branch}):  "{summary}"',
    {user = P.agent(msg), repo = repo(msg), branch = u.req(c.branch), summary = summ})
end

-- Repositories without a cgit view.
local no_web = {puppet = true}

function P.link(msg)
  local r = repo(msg)
  if no_web[r] then return "" end
  local c = commit(msg)
  return "https://infrastructure.fedoraproject.org/cgit/" .. r .. ".git/commit/?h=" ..
    u.str(u.req(c.branch)) .. "&id=" .. u.str(u.req(c.rev))
end

function P.secondary_icon(msg) return u.avatar_url(P.agent(msg)) end
function P.usernames(msg) return {P.agent(msg)} end

function P.objects(msg)
  local r = repo(msg)
  return u.collect(u.members(u.req(commit(msg).stats).files), nil, function(f) return r .. "/" .. f end)
end
