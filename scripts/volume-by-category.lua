-- volume-by-category: messages per bucket and per category.
--
-- The category is datagrepper's: the fourth word of the topic
-- (org.fedoraproject.prod.buildsys.build.state.change -> buildsys), or
-- "Unclassified" for shorter topics, where the original crashed.
model {
  name = "volume-by-category",
  summary = "Number of messages per category per time bucket",
  description = [[
The count of messages, organized by category (the fourth word of the
topic, as datagrepper defines it; "Unclassified" when the topic is shorter).
One row per bucket and category; the timestamp is the end of the bucket.]],
  intervals = {"1s", "15s", "1m", "1h", "1d"},
  columns = {
    {name = "category", type = "text", key = true, index = true, doc = "the topic's category"},
    {name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "messages in the bucket"},
  },
}

local counts = counter()

function process(msg)
  counts:inc(bucket(msg.time), msg.category)
end

function update(db)
  -- each sum as db:add{timestamp = ..., category = ..., volume = n}
  db:add_counts(counts, {"timestamp", "category"}, "volume")
end
