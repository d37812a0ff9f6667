-- Recurses without end.
model { name = "hostile-recursion", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
local function deeper(n) return deeper(n + 1) + 1 end
function process(msg)
  deeper(1)
end
function update(db) end
