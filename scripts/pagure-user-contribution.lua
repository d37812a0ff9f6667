-- Contributions to pagure.io per user per day: each io.pagure.prod
-- message adds one for every user fedmsg.meta finds in it.
model {
  name = "number-of-contribution-per-user-to-pagure.io",
  summary = "Number of contributions of each user to pagure.io per day",
  description = [[
Count the contributions of each user to pagure.io per day: every message on
an io.pagure.prod topic adds one for each user it concerns (as fedmsg.meta
finds them). The timestamp is the end of the day (UTC).]],
  interval = "1d",
  topics = {"io.pagure.prod."},
  columns = {
    {name = "user", type = "text", key = true, index = true, doc = "the FAS user name"},
    {name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "contributions that day"},
  },
}

local counts = counter()

function process(msg)
  local b = bucket(msg.time)
  for _, u in ipairs(meta.usernames(msg)) do
    counts:inc(b, u)
  end
end

function update(db)
  -- each sum as db:add{timestamp = ..., user = ..., volume = n}
  db:add_counts(counts, {"timestamp", "user"}, "volume")
end
