-- How long Koji builds take, per package and hour.
--
-- A build message says that a build finished, not how long it ran: that
-- is in Koji's record of the build, one XML-RPC call (getBuild) away. A
-- call takes tens of milliseconds to seconds, far longer than the bus
-- allows per message, so the lookups go through the model's work queue:
--
--   process  pushes one item per finished build (cheap, in journal order)
--   work     asks Koji about the build, on a pool of workers
--   done     adds the answer to the hour of the build message, in the
--            order the items were pushed
--   update   writes the hours
--
-- The queue is committed with the model's rows and cursor, so a restart or
-- a crash neither loses a lookup nor counts a build twice.
--
-- Needs the service "koji": Koji hub's XML-RPC endpoint, e.g.
--   statscache run --service koji=https://koji.fedoraproject.org/kojihub
-- (statscache demo starts a local stand-in.)

local xmlrpc = require("xmlrpc")

model {
  name = "Build durations",
  summary = "How long Koji builds ran, per package and hour",
  description = [[
Every build that finished (completed or failed) on the Fedora build system,
counted in the hour its message was sent, with the time Koji spent on it
(completion minus start, from Koji's getBuild). "unresolved" counts the
builds Koji had no record of, or whose record could not be fetched.]],
  interval = "1h",
  topics = {"org.fedoraproject.prod.buildsys.build.state.change"},
  columns = {
    {name = "package", type = "text", key = true},
    {name = "completed", type = "integer", not_null = true, aggregate = "sum"},
    {name = "failed", type = "integer", not_null = true, aggregate = "sum"},
    {name = "seconds", type = "real", not_null = true, aggregate = "sum", doc = "build time of the resolved builds, summed"},
    {name = "longest", type = "real", not_null = true, aggregate = "max", doc = "the longest resolved build, in seconds"},
    {name = "unresolved", type = "integer", not_null = true, aggregate = "sum"},
  },
  queue = {workers = 4, limit = 2000, retries = 5, services = {"koji"}},
}

-- Koji's build states: a build message with one of these as its new state
-- is a build that finished.
local COMPLETE, FAILED = 1, 3

function process(msg)
  local b = msg.body
  if (b.new ~= COMPLETE and b.new ~= FAILED) or type(b.build_id) ~= "number" then
    return
  end
  queue.push({build = b.build_id, time = msg.time, package = b.name or "?", state = b.new})
end

-- work runs on a worker: it may take its time, and it has http but no
-- state. It returns what done needs.
function work(item)
  local body, status = http.post("koji", "", xmlrpc.call("getBuild", item.build), "text/xml")
  if status == 429 or status >= 500 then
    retry("koji answered HTTP " .. status) -- tried again later, with backoff
  end
  if status ~= 200 then
    error("koji answered HTTP " .. status)
  end
  local build, fault = xmlrpc.response(body)
  if fault then
    error("koji: " .. fault)
  end
  if build == nil or not build.start_ts or not build.completion_ts then
    return {found = false}
  end
  return {found = true, seconds = build.completion_ts - build.start_ts}
end

local hours = {} -- "timestamp package" -> row, until update writes it

function done(item, result, err)
  local ts = bucket(item.time)
  local k = ts .. " " .. item.package
  local row = hours[k]
  if not row then
    row = {timestamp = ts, package = item.package, completed = 0, failed = 0, seconds = 0, longest = 0, unresolved = 0}
    hours[k] = row
  end
  if item.state == COMPLETE then
    row.completed = row.completed + 1
  else
    row.failed = row.failed + 1
  end
  if err or not result.found then
    row.unresolved = row.unresolved + 1 -- err is also in the model's errors
    return
  end
  row.seconds = row.seconds + result.seconds
  row.longest = math.max(row.longest, result.seconds)
end

function update(db)
  for _, row in pairs(hours) do
    local old = db:get({timestamp = row.timestamp, package = row.package})
    if old then
      row.completed = row.completed + old.completed
      row.failed = row.failed + old.failed
      row.seconds = row.seconds + old.seconds
      row.longest = math.max(row.longest, old.longest)
      row.unresolved = row.unresolved + old.unresolved
    end
    db:upsert(row)
  end
  hours = {}
end
