-- Sorts a large table with a comparator, over and over.
model { name = "hostile-sort", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  local t = {}
  for i = 1, 100000 do t[i] = (i * 7919) % 100003 end
  while true do table.sort(t, function(a, b) return a > b end) table.sort(t) end
end
function update(db) end
