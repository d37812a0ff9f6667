-- contributor-retention: weekly cohorts. A contributor's cohort is the
-- ISO week of their first message; for each week and cohort the table
-- counts how many of that cohort were active that week. Aggregates only.
--
-- Contributors are as in contributors.lua (meta.usernames minus
-- lib/system_accounts.lua). Durable state per contributor: "f:<name>",
-- the end of their first week (the cohort), and "l:<name>", the end of the
-- last week they were active in; a message costs a constant number of
-- state lookups however many contributors the model has seen.
model {
  name = "contributor-retention",
  summary = "How many of each weekly cohort of new contributors are active, week by week",
  description = [[
Cohorts of contributors by the ISO week of their first message (the users
fedmsg.meta finds, minus the system accounts of lib/system_accounts.lua).
One row per week and cohort with at least one of the cohort active that
week: cohort is the end of the cohort's first week (Unix time), age the
whole weeks since it (0 for that week), active how many of the cohort
had a message in the week. A cohort's size is its row at age 0.]],
  interval = "1w",
  columns = {
    {name = "cohort", type = "integer", key = true, index = true, doc = "end of the cohort's first week (Unix time)"},
    {name = "age", type = "integer", not_null = true, doc = "whole weeks since the cohort's first week"},
    {name = "active", type = "integer", not_null = true, doc = "contributors of the cohort active in the week"},
  },
}

local system = {}
for _, name in ipairs(require("system_accounts")) do
  system[name] = true
end

local WEEK = 7 * 86400
local week         -- the week of the last message
local seen = {}    -- contributors already counted in `week`; a cache of state
local counts = counter()

function process(msg)
  local w = bucket(msg.time)
  if w ~= week then
    week, seen = w, {}
  end
  local users = meta.usernames(msg)
  for i = 1, #users do
    local u = users[i]
    if not system[u] and not seen[u] then
      seen[u] = true
      local last = state.get("l:" .. u)
      if last ~= w then
        local cohort
        if last == nil then
          cohort = w
          state.set("f:" .. u, w)
        else
          cohort = state.get("f:" .. u)
        end
        state.set("l:" .. u, w)
        counts:inc(w, cohort)
      end
    end
  end
end

function update(db)
  for w, cohort, n in counts:drain() do
    local r = db:get{timestamp = w, cohort = cohort}
    db:upsert{timestamp = w, cohort = cohort, age = math.floor((w - cohort) / WEEK + 0.5),
              active = (r and r.active or 0) + n}
  end
end
