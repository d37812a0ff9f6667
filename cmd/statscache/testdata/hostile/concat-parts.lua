-- A thousand strings of 1 MiB, then one string of them all.
model { name = "hostile-concat-parts", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  local parts = {}
  for i = 1, 1000 do parts[i] = string.rep(string.char(65 + i % 26), 1024 * 1024) end
  local s = table.concat(parts)
end
function update(db) end
