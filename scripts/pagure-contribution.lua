-- Contributions to pagure.io per day: every message published by
-- pagure.io's production instance counts as one contribution.
model {
  name = "number-of-contribution-to-pagure.io",
  summary = "Number of contributions to pagure.io per day",
  description = [[
Count the number of contributions to pagure.io per day: every message on an
io.pagure.prod topic (commits pushed, issues and pull requests opened,
commented, closed...) counts once. The timestamp is the end of the day (UTC).]],
  interval = "1d",
  topics = {"io.pagure.prod."},
  columns = {
    {name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "contributions that day"},
  },
}

local counts = counter()

function process(msg)
  counts:inc(bucket(msg.time))
end

function update(db)
  -- each sum as db:add{timestamp = ..., volume = n}
  db:add_counts(counts, {"timestamp"}, "volume")
end
