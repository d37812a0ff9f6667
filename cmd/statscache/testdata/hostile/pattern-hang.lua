-- A pattern that backtracks for minutes, in process.
model { name = "hostile-pattern", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  string.find(string.rep("a", 100000), ".-.-.-.-.-b")
end
function update(db) end
