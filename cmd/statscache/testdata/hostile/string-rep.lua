-- Asks for gigabytes of string.
model { name = "hostile-rep", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  local s = string.rep("x", 4 * 1024 * 1024 * 1024)
end
function update(db) end
