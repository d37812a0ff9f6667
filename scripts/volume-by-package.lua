-- volume-by-package: messages per bucket and per package the message is
-- about, as fedmsg.meta finds them (meta.packages). (The original plugin
-- existed but was disabled.)
model {
  name = "volume-by-package",
  summary = "Number of messages per package per time bucket",
  description = [[
The count of messages concerning each package, as fedmsg.meta finds them in
the message (builds, updates, commits, bugs...). A message about several
packages counts once for each. The timestamp is the end of the bucket.]],
  intervals = {"1s", "5s", "1m"},
  columns = {
    {name = "package", type = "text", key = true, index = true, doc = "the package name"},
    {name = "volume", type = "integer", not_null = true, aggregate = "sum", doc = "messages in the bucket"},
  },
}

local counts = counter()

function process(msg)
  local pkgs = meta.packages(msg)
  if #pkgs == 0 then
    return
  end
  local b = bucket(msg.time)
  for _, p in ipairs(pkgs) do
    counts:inc(b, p)
  end
end

function update(db)
  -- each sum as db:add{timestamp = ..., package = ..., volume = n}
  db:add_counts(counts, {"timestamp", "package"}, "volume")
end
