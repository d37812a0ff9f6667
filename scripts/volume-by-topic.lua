-- volume-by-topic: messages per bucket and per full topic.
-- (The original plugin raised NameError on every message and was disabled.)
model {
  name = "volume-by-topic",
  summary = "Number of messages per topic per time bucket",
  description = [[
The count of messages, organized by their full topic. One row per bucket
and topic; the timestamp is the end of the bucket.]],
  intervals = {"1s", "5s", "1m"},
  columns = {
    {name = "topic", type = "text", key = true, index = true, doc = "the full topic"},
    {name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "messages in the bucket"},
  },
}

local counts = counter()

function process(msg)
  counts:inc(bucket(msg.time), msg.topic)
end

function update(db)
  -- each sum as db:add{timestamp = ..., topic = ..., volume = n}
  db:add_counts(counts, {"timestamp", "topic"}, "volume")
end
