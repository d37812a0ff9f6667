-- The same pattern at the top level: loading it must give up.
model { name = "hostile-pattern-toplevel", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
string.find(string.rep("a", 100000), ".-.-.-.-.-b")
function process(msg) end
function update(db) end
