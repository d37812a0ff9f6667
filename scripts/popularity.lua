-- popularity: how often each user is mentioned on the bus.
--
-- Ported from the example plugin of the original getting-started page: one
-- row per (message, user), whose "references" is how many messages had named
-- that user up to and including this one. The running count per user lives
-- in the model's durable state, so it survives restarts exactly.
--
-- For now a message's users are its body's user, owner and agent fields
-- (strings, or tables with a name); the fedmsg.meta library replaces this.
model {
  name = "popularity",
  summary = "Number of messages regarding a user",
  description = [[
For every message that names a user (its user, owner or agent field), one
row per user: the message time, the user, and how many messages had named
that user so far, this one included.]],
  columns = {
    {name = "username", type = "text", key = true, index = true, doc = "the user named"},
    {name = "msg_id", type = "text", key = true, doc = "the message that named the user"},
    {name = "references", type = "integer", not_null = true, doc = "messages naming the user so far"},
  },
}

local pending = {}

local function username(v)
  if type(v) == "string" and v ~= "" then
    return v
  elseif type(v) == "table" then
    return username(v.name) or username(v.username)
  end
  return nil
end

local function users(body)
  local seen, out = {}, {}
  if type(body) ~= "table" then
    return out
  end
  for _, field in ipairs{"user", "owner", "agent"} do
    local u = username(body[field])
    if u and not seen[u] then
      seen[u] = true
      out[#out + 1] = u
    end
  end
  table.sort(out)
  return out
end

function process(msg)
  for _, u in ipairs(users(msg.body)) do
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
