-- Doubles a string with .. until memory runs out.
model { name = "hostile-doubling", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  local s = "xxxxxxxxxxxxxxxx"
  while true do s = s .. s end
end
function update(db) end
