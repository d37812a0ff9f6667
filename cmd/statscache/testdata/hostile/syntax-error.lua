-- A script that does not parse.
model { name = "hostile-syntax", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  if msg.time then
end
function update(db) end
