-- Never returns from process.
model { name = "hostile-loop", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  while true do end
end
function update(db) end
