-- contributors: active, new, retained, returning and churned contributors
-- per ISO week and per calendar month. Aggregates only: the table counts
-- people, it never names them.
--
-- A contributor is a user fedmsg.meta finds in a message (meta.usernames)
-- that is not a system account (lib/system_accounts.lua). With A(p) the
-- contributors active in period p and p-1 the period before:
--   active    = |A(p)|
--   new       = active in p, never active in an earlier period
--   retained  = |A(p) and A(p-1)|
--   returning = active in p, not in p-1, in some earlier period
--   churned   = |A(p-1) minus A(p)| = |A(p-1)| - retained
-- so active = new + retained + returning.
--
-- Durable state, one key per contributor ("u:<name>" = the end of the
-- last period they were active in) and two for the model ("period", the
-- current period, and "active", its count so far), so a message costs a
-- constant number of state lookups however many contributors the model has
-- seen. Lua memory only caches state for the current period and is
-- rebuilt from it after a restart.
model {
  name = "contributors",
  summary = "Active, new, retained, returning and churned contributors per week and per month",
  description = [[
How many people contributed, per ISO week (Monday 00:00 UTC to the next
Monday) and per calendar month: the users fedmsg.meta finds in the
messages, minus the system accounts of lib/system_accounts.lua. One row
per period, from the first period with a message to the current one
(which is updated as messages come); the timestamp is the end of the
period. active = new + retained + returning; churned counts those active
in the previous period and not in this one.]],
  intervals = {"1w", "1mo"},
  columns = {
    {name = "active", type = "integer", not_null = true, doc = "distinct contributors with a message in the period"},
    {name = "new", type = "integer", not_null = true, doc = "active, and never active in an earlier period"},
    {name = "retained", type = "integer", not_null = true, doc = "active in this period and in the previous one"},
    {name = "returning", type = "integer", not_null = true, doc = "active, not in the previous period, but in an earlier one"},
    {name = "churned", type = "integer", not_null = true, doc = "active in the previous period and not in this one"},
  },
}

local system = {}
for _, name in ipairs(require("system_accounts")) do
  system[name] = true
end

local period       -- end of the current period; a cache of state "period"
local seen = {}    -- contributors already counted in `period`; a cache of state
local pending = {} -- period end -> counts to add at the next update

local function row(p)
  local r = pending[p]
  if r == nil then
    r = {active = 0, new = 0, retained = 0, returning = 0, churned = 0}
    pending[p] = r
  end
  return r
end

-- enter moves the model to period p (the period of the message at hand):
-- the period after the one it was in counts everyone active there as
-- churned until they show up again, and periods nobody wrote in get a
-- row too.
local function enter(p)
  if period == nil then
    period = state.get("period")
  end
  if period == p then
    return
  end
  if period ~= nil then
    local q = bucket(period)
    local r = row(q)
    r.churned = r.churned + (state.get("active") or 0)
    while q < p do
      q = bucket(q)
      row(q)
    end
  end
  row(p)
  period, seen = p, {}
  state.set("period", p)
  state.set("active", 0)
end

function process(msg)
  local p = bucket(msg.time)
  enter(p)
  local users = meta.usernames(msg)
  for i = 1, #users do
    local u = users[i]
    if not system[u] and not seen[u] then
      seen[u] = true
      local key = "u:" .. u
      local last = state.get(key)
      if last ~= p then
        local r = row(p)
        if last == nil then
          r.new = r.new + 1
        elseif bucket(last) == p then
          r.retained = r.retained + 1
          r.churned = r.churned - 1
        else
          r.returning = r.returning + 1
        end
        r.active = r.active + 1
        state.set(key, p)
        state.incr("active")
      end
    end
  end
end

function update(db)
  for p, r in pairs(pending) do
    db:add{timestamp = p, active = r.active, new = r.new, retained = r.retained,
           returning = r.returning, churned = r.churned}
  end
  pending = {}
end
