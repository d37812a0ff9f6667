-- Keeps everything it ever saw, and then some.
model { name = "hostile-table", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
local hoard = {}
function process(msg)
  for i = 1, 20000 do hoard[#hoard + 1] = i end
end
function update(db) end
