-- activity-by-category: the week in Fedora. Per ISO week and category,
-- the messages, the distinct contributors, and the category's messages in
-- the week before, the table a "this week in Fedora" post is written from.
-- Aggregates only.
--
-- messages counts every message of the category (bots' included, as
-- volume-by-category does); contributors counts the users fedmsg.meta
-- finds, minus lib/system_accounts.lua. Durable state: one key per
-- contributor and category, the end of the last week they were counted in,
-- so a message costs a constant number of state lookups.
model {
  name = "activity-by-category",
  summary = "Messages and contributors per category per week, with the week before",
  description = [[
The week in Fedora: per ISO week (Monday 00:00 UTC to the next Monday) and
category (the fourth word of the topic, as datagrepper defines it),
messages counts every message, contributors the distinct people among the
users fedmsg.meta finds (minus the system accounts of
lib/system_accounts.lua), and previous_messages the same category's
messages in the week before (0 if none). The timestamp is the end of the
week.]],
  interval = "1w",
  columns = {
    {name = "category", type = "text", key = true, index = true, doc = "the topic's category"},
    {name = "messages", type = "integer", not_null = true, doc = "messages in the week"},
    {name = "contributors", type = "integer", not_null = true, doc = "distinct contributors in the category that week"},
    {name = "previous_messages", type = "integer", not_null = true, doc = "the category's messages in the week before, 0 if none"},
  },
}

local system = {}
for _, name in ipairs(require("system_accounts")) do
  system[name] = true
end

local WEEK = 7 * 86400
local week        -- the week of the last message
local seen = {}   -- state keys already counted in `week`; a cache of state
local counts = counter()

function process(msg)
  local w = bucket(msg.time)
  if w ~= week then
    week, seen = w, {}
  end
  local cat = msg.category
  counts:inc(w, cat, "messages")
  local users = meta.usernames(msg)
  for i = 1, #users do
    local u = users[i]
    if not system[u] then
      -- the length prefix keeps (category, user) pairs apart whatever
      -- characters either holds
      local key = #cat .. ":" .. cat .. u
      if not seen[key] then
        seen[key] = true
        if state.get(key) ~= w then
          state.set(key, w)
          counts:inc(w, cat, "contributors")
        end
      end
    end
  end
end

function update(db)
  -- Weeks in order, so that a week written in the same batch as the week
  -- before it reads that week's final count.
  local byWeek, weeks = {}, {}
  for w, cat, col, n in counts:drain() do
    if byWeek[w] == nil then
      byWeek[w] = {}
      weeks[#weeks + 1] = w
    end
    local c = byWeek[w][cat]
    if c == nil then
      c = {messages = 0, contributors = 0}
      byWeek[w][cat] = c
    end
    c[col] = c[col] + n
  end
  table.sort(weeks)
  for _, w in ipairs(weeks) do
    for cat, c in pairs(byWeek[w]) do
      if db:get{timestamp = w, category = cat} == nil then
        local prev = db:get{timestamp = w - WEEK, category = cat}
        db:insert{timestamp = w, category = cat, messages = c.messages, contributors = c.contributors,
                  previous_messages = prev and prev.messages or 0}
      else
        -- previous_messages is added as 0: unchanged, but named, as the
        -- upsert behind add needs every NOT NULL column
        db:add{timestamp = w, category = cat, messages = c.messages, contributors = c.contributors,
               previous_messages = 0}
      end
    end
  end
end
