-- release-engineering-event-logs: the latest state of Fedora release
-- engineering's pipelines, for a dashboard. Not a time series: one row per
-- (category, category_constraint), overwritten by the newest message about
-- it, whose time is the row's timestamp.
--
-- The original plugin had four sub-plugins sharing one table; here they
-- are the local functions amis, artifacts, compose and updates below. Each
-- turns a message into (category, constraint, message) or nothing. Fixed
-- from the original: the message column holds the JSON object itself (it
-- was a JSON string, so clients decoded twice); updates upsert on their
-- "<release>-<repo>" constraint (the original inserted a NULL constraint,
-- so every sync added a row); the AMI launch link names the region, not
-- the whole destination; an artifact without "info" is recorded (it raised);
-- the compose topic is matched whole (the original pattern was open at the
-- end); the newest time per row key is kept in the durable state, bounded
-- by the number of rows (the original kept an in-memory table that was
-- never pruned and was lost at restart); the layout lists the branched
-- composes and names the EPEL updates "Repo Updates (EPEL)".
model {
  name = "release-engineering-event-logs",
  summary = "Latest state of release engineering events",
  description = [[
The latest event of each release engineering pipeline: composes (rawhide and
branched, each stage per architecture), bodhi repository syncs (per release
and repository), AMI uploads (per image and region) and appliance and live
media builds (per image). Each row holds the newest message about its
category and constraint; older messages about the same pair are ignored.
The layout (/api/release-engineering-event-logs/layout) groups the
categories for a dashboard.]],
  topics = {"org.fedoraproject.prod."},
  columns = {
    {name = "category", type = "text", index = true, doc = "the pipeline, e.g. compose-rawhide_primary"},
    {name = "category_constraint", type = "text", doc = "what within it, e.g. mash, or F23-updates"},
    {name = "message", type = "json", not_null = true, doc = "{name, status, ...} for the dashboard"},
  },
  -- Not the timestamp: each row is replaced by the newest message.
  key = {"category", "category_constraint"},
  layout = {
    groups = {
      {name = "compose", title = "Composes", categories = {
        {category = "compose-rawhide_primary", title = "Rawhide (primary)"},
        {category = "compose-rawhide_arm", title = "Rawhide (arm)"},
        {category = "compose-rawhide_ppc", title = "Rawhide (ppc)"},
        {category = "compose-rawhide_s390", title = "Rawhide (s390)"},
        {category = "compose-branched_primary", title = "Branched (primary)"},
        {category = "compose-branched_arm", title = "Branched (arm)"},
        {category = "compose-branched_ppc", title = "Branched (ppc)"},
        {category = "compose-branched_s390", title = "Branched (s390)"},
      }},
      {name = "updates", title = "Repository syncs", categories = {
        {category = "updates-fedora", title = "Repo Updates (Fedora)"},
        {category = "updates-epel", title = "Repo Updates (EPEL)"},
      }},
      {name = "amis", title = "Cloud images (AMIs)", categories = {
        {category = "ami-branched", title = "AMIs (branched)", options = {link_for = "name", show_time_at = false}},
        {category = "ami-rawhide", title = "AMIs (rawhide)", options = {link_for = "message", show_time_at = false}},
      }},
      {name = "appliance", title = "Appliance builds (rawhide)", categories = {
        {category = "artifact-appliance_armhfp", title = "armhfp", options = {show_status = false, show_time_at = false}},
      }},
      {name = "livecd", title = "LiveCD builds (rawhide)", categories = {
        {category = "artifact-livecd_x86_64", title = "x86_64", options = {show_time_at = false}},
        {category = "artifact-livecd_i686", title = "i686", options = {show_time_at = false}},
      }},
    },
    default_options = {
      show_time_at = true,
      show_status = true,
      status_verb_map = {complete = "completed", start = "started", open = "opened", close = "closed"},
      status_class_map = {
        complete = "text-primary", closed = "text-primary",
        start = "text-warning", open = "text-warning", opened = "text-warning",
        failed = "text-danger",
      },
      old_log_threshold = {key = "hours", value = 24},
    },
  },
}

local PROD = "org.fedoraproject.prod."

local function split(s, sep)
  local out = {}
  for part in (s .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do
    out[#out + 1] = part
  end
  return out
end

local function nonempty(s)
  return type(s) == "string" and s ~= ""
end

-- amis: a completed AMI upload or test. Category by the image's release
-- (the fourth dash-separated word of its name: "rawhide" or a number),
-- constraint "<image>-<region>".
local AMI_TOPICS = {[PROD .. "fedimg.image.upload"] = true, [PROD .. "fedimg.image.test"] = true}

local function amis(msg)
  if not AMI_TOPICS[msg.topic] then
    return nil
  end
  local b = msg.body
  if b.status ~= "completed" or not nonempty(b.image_name) then
    return nil
  end
  local name = b.image_name
  local words = split(split(name, ".")[1], "-")
  local category = "ami-branched"
  if words[4] and words[4]:lower() == "rawhide" then
    category = "ami-rawhide"
  end
  local dest = type(b.destination) == "string" and b.destination or ""
  -- "EC2 (eu-west-1)" names the region in parentheses; newer messages
  -- give the region alone.
  local region = dest:match("%((.-)%)") or dest
  local m = {name = name, extra_text = dest, status = "completed"}
  local ami = type(b.extra) == "table" and b.extra.id or nil
  if ami ~= nil then
    m.extra_link = "https://redirect.fedoraproject.org/console.aws.amazon.com/ec2/v2/home?region=" ..
      region .. "#LaunchInstanceWizard:ami=" .. tostring(ami)
  end
  return category, name .. "-" .. region, m
end

-- artifacts: appliance and live media builds run by the masher (koji task
-- messages). Category by method and architecture (the last dash-separated
-- word of the srpm), constraint the srpm decorated with the image format
-- and the target's branch.
local ARTIFACT_METHODS = {appliance = true, livecd = true}
local FORMAT_SUFFIX = {qcow2 = "-sda.qcow2", raw = "-sda.raw.xz"}

local function artifacts(msg)
  if not msg.topic:find(".buildsys.", 1, true) then
    return nil
  end
  local b = msg.body
  if b.owner ~= "masher" or not ARTIFACT_METHODS[b.method] or not nonempty(b.srpm) then
    return nil
  end
  local words = split(b.srpm, "-")
  local category = "artifact-" .. b.method .. "_" .. words[#words]
  local info = type(b.info) == "table" and b.info or {}
  local req = type(info.request) == "table" and info.request or {}
  local last = req[#req]
  local format = type(last) == "table" and last.format or nil
  local name = b.srpm
  if nonempty(format) then
    name = name .. " (" .. format .. ")"
  end
  if type(req[2]) == "string" then
    name = name .. (req[2]:find("rawhide", 1, true) and " (rawhide)" or " (branched)")
  end
  local m = {name = name, status = b.new, extra_text = "(details)", extra_link = meta.link(msg)}
  -- The image's link, once the task closed with a single child task:
  -- work/tasks/<task dir>/<child id>/<name>-<version>-<release><suffix>.
  local children = info.children
  if b.new == "CLOSED" and type(children) == "table" and #children == 1 and type(children[1]) == "table"
      and type(info.result) == "string" and type(req[6]) == "table" then
    local rwords = split(info.result, " ")
    local dir = split(rwords[#rwords], "/")[6]
    local suffix = format == nil and ".iso" or FORMAT_SUFFIX[format]
    if dir and suffix and children[1].id and req[1] and req[2] and req[6].release then
      m.link = "https://kojipkgs.fedoraproject.org/work/tasks/" .. dir .. "/" ..
        tostring(children[1].id) .. "/" .. tostring(req[1]) .. "-" .. tostring(req[2]) ..
        "-" .. tostring(req[6].release) .. suffix
    end
  end
  return category, name, m
end

-- compose: org.fedoraproject.prod.compose.<rawhide|branched>[.<mash|
-- pungify|rsync>].<start|complete>, matched whole. Category by branch and
-- architecture ("primary" when none), constraint the stage (or the branch
-- for the compose as a whole).
local BRANCHES = {rawhide = true, branched = true}
local STAGES = {mash = true, pungify = true, rsync = true}
local EVENTS = {start = true, complete = true}

local function compose(msg)
  local rest = msg.topic:match("^org%.fedoraproject%.prod%.compose%.(.*)$")
  if not rest then
    return nil
  end
  local w = split(rest, ".")
  local branch, stage, event
  if #w == 2 then
    branch, stage, event = w[1], w[1], w[2]
  elseif #w == 3 and STAGES[w[2]] then
    branch, stage, event = w[1], w[2], w[3]
  else
    return nil
  end
  if not BRANCHES[branch] or not EVENTS[event] then
    return nil
  end
  local arch = msg.body.arch
  if not nonempty(arch) then
    arch = "primary"
  end
  local title = stage:sub(1, 1):upper() .. stage:sub(2)
  return "compose-" .. branch .. "_" .. arch, stage, {name = title, status = event}
end

-- updates: a bodhi repository sync. One row per "<release>-<repo>".
local UPDATES = {[PROD .. "bodhi.updates.fedora.sync"] = "fedora", [PROD .. "bodhi.updates.epel.sync"] = "epel"}

local function updates(msg)
  local kind = UPDATES[msg.topic]
  if not kind then
    return nil
  end
  local b = msg.body
  if b.release == nil or b.repo == nil then
    return nil
  end
  local name = tostring(b.release) .. "-" .. tostring(b.repo)
  return "updates-" .. kind, name, {name = name, status = "synced out"}
end

local handlers = {amis, artifacts, compose, updates}
local pending = {} -- row key -> row, the newest message per key since the last update

function process(msg)
  for _, handle in ipairs(handlers) do
    local category, constraint, message = handle(msg)
    if category then
      local key = json.encode({category, constraint})
      local seen = "newest:" .. key
      local newest = state.get(seen)
      if newest == nil or msg.time > newest then
        state.set(seen, msg.time)
        pending[key] = {timestamp = msg.time, category = category, category_constraint = constraint, message = message}
      end
    end
  end
end

function update(db)
  for _, row in pairs(pending) do
    db:upsert(row)
  end
  pending = {}
end
