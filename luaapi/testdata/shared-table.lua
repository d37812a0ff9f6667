-- A table that holds the previous one twice, sixty levels deep: little
-- memory, but its JSON would be 2^60 values.
model { name = "hostile-shared", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  local t = {1}
  for i = 1, 60 do t = {t, t} end
  local s, err = json.encode(t)
  if s then error("encoded " .. #s .. " bytes") end
  state.set("t", t)
end
function update(db) end
