-- Fills a table inside one call until memory runs out: the Lua VM's own
-- tables are what only the heap watchdog sees.
model { name = "hostile-table", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  local t, i = {}, 0
  while true do i = i + 1 t[i] = {i, i} end
end
function update(db) end
