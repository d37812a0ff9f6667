-- Every read of a missing global raises: probing the script for its
-- optional functions (work, done) must not run this.
model { name = "hostile-index", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg) local x = missing_global end
function update(db) end
setmetatable(_G, {__index = function(t, k) error("boom " .. tostring(k)) end})
