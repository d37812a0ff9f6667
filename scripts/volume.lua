-- volume: how many messages crossed the bus in each time bucket.
--
-- The original plugin keyed its rows by the raw message timestamp, so its
-- three tables were identical and not bucketed at all; here every row is one
-- bucket, labelled with the END of the bucket.
model {
  name = "volume",
  summary = "Number of messages per time bucket",
  description = [[
For each time bucket, the number of messages that came across the bus.
A row's timestamp is the end of its bucket: the row at 12:01:00 of the
1m table counts the messages from 12:00:00 up to, not including, 12:01:00.]],
  intervals = {"1s", "5s", "1m"},
  columns = {
    {name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "messages in the bucket"},
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
