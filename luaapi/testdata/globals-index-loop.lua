-- Every read of a missing global loops forever.
model { name = "hostile-index-loop", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg) local x = not_defined end
function update(db) end
setmetatable(_G, {__index = function(t, k) while true do end end})
