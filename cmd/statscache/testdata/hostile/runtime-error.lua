-- Fails on every message.
model { name = "hostile-runtime", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  error("broken on " .. msg.id)
end
function update(db) end
