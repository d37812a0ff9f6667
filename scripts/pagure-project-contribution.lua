-- Contributions to pagure.io per project per day.
--
-- The project is the pull request's project on pull-request topics, the
-- repository on git.receive, and the message's project otherwise. Unlike the
-- original, forks and namespaced projects are kept apart ("fork/user/name",
-- "namespace/name"), and a message without a project is counted under
-- "(unknown)" instead of crashing the plugin. Edited comments do not count.
model {
  name = "number-of-contribution-per-project-to-pagure.io",
  summary = "Number of contributions to each pagure.io project per day",
  description = [[
Count the number of contributions to each project on pagure.io per day.
Edits of issue comments are not counted. The project is written as pagure
shows it: "name", "namespace/name", or "fork/user/name" for forks.]],
  interval = "1d",
  topics = {"io.pagure.prod."},
  columns = {
    {name = "project", type = "text", key = true, index = true, doc = "the project's full name"},
    {name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "contributions that day"},
  },
}

local counts = counter()

-- fullname returns pagure's full name of a project object.
local function fullname(p)
  if type(p) ~= "table" or type(p.name) ~= "string" then
    return nil
  end
  local name = p.name
  if type(p.namespace) == "string" and p.namespace ~= "" then
    name = p.namespace .. "/" .. name
  end
  if type(p.parent) == "table" and type(p.user) == "table" and type(p.user.name) == "string" then
    name = "fork/" .. p.user.name .. "/" .. name
  end
  return name
end

local function project(msg)
  local body, topic = msg.body, msg.topic
  if type(body) ~= "table" then
    return nil
  end
  if topic:find("io.pagure.prod.pagure.pull-request", 1, true) then
    return fullname(body.pullrequest and body.pullrequest.project)
  elseif topic == "io.pagure.prod.pagure.git.receive" then
    return fullname(body.repo)
  end
  return fullname(body.project)
end

function process(msg)
  if msg.topic == "io.pagure.prod.pagure.issue.comment.edited" then
    return
  end
  counts:inc(bucket(msg.time), project(msg) or "(unknown)")
end

function update(db)
  -- each sum as db:add{timestamp = ..., project = ..., volume = n}
  db:add_counts(counts, {"timestamp", "project"}, "volume")
end
