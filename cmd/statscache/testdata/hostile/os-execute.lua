-- Tries to run a shell command.
model { name = "hostile-os", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  os.execute("touch /tmp/statscache-hostile-was-here")
end
function update(db) end
