-- Builds strings under the 16 MiB cap with .. again and again inside one
-- call, keeping them all: each is charged to the call, which is stopped
-- at its allocation limit.
model { name = "hostile-concat-loop", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  local s, keep = string.rep("x", 1024 * 1024), {}
  while true do keep[#keep + 1] = s .. #keep end
end
function update(db) end
