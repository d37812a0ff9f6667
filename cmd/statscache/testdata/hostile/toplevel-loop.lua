-- Hangs while loading.
model { name = "hostile-toplevel", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
while true do end
function process(msg) end
function update(db) end
