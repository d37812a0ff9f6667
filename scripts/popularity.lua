-- popularity: how often each user is mentioned on the bus.
--
-- Ported from the example plugin of the original getting-started page: one
-- row per (message, user), whose "references" is how many messages had named
-- that user up to and including this one. The running count per user lives
-- in the model's durable state, so it survives restarts exactly.
--
-- A message's users are those fedmsg.meta finds in it (meta.usernames):
-- its author, owner, agent and the people it names.
model {
  name = "popularity",
  summary = "Number of messages regarding a user",
  description = [[
For every message that concerns a user (as fedmsg.meta finds them: the
author, owner, agent and people named), one row per user: the message time,
the user, and how many messages had concerned that user so far, this one
included.]],
  columns = {
    {name = "username", type = "text", key = true, index = true, doc = "the user named"},
    {name = "msg_id", type = "text", key = true, doc = "the message that named the user"},
    {name = "references", type = "integer", not_null = true, aggregate = "last", doc = "messages naming the user so far"},
  },
}

local pending = {}

function process(msg)
  for _, u in ipairs(meta.usernames(msg)) do
    local n = state.incr("refs:" .. u)
    pending[#pending + 1] = {timestamp = msg.time, username = u, msg_id = msg.id, references = n}
  end
end

function update(db)
  for _, row in ipairs(pending) do
    db:insert(row)
  end
  pending = {}
end
