-- volume-by-user: messages per bucket and per user the message is about.
--
-- The users are those fedmsg.meta finds in the message (meta.usernames):
-- a message naming three users adds one to each; one naming none adds
-- nothing. (The original plugin existed but was disabled.)
model {
  name = "volume-by-user",
  summary = "Number of messages per user per time bucket",
  description = [[
The count of messages concerning each user, as fedmsg.meta finds them in
the message (the author, the owner, the people named). A message about
several users counts once for each. The timestamp is the end of the bucket.]],
  intervals = {"1s", "5s", "1m"},
  columns = {
    {name = "user", type = "text", key = true, index = true, doc = "the FAS user name"},
    {name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "messages in the bucket"},
  },
}

local counts = counter()

function process(msg)
  local users = meta.usernames(msg)
  if #users == 0 then
    return
  end
  local b = bucket(msg.time)
  for _, u in ipairs(users) do
    counts:inc(b, u)
  end
end

function update(db)
  -- each sum as db:add{timestamp = ..., user = ..., volume = n}
  db:add_counts(counts, {"timestamp", "user"}, "volume")
end
