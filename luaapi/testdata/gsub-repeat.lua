-- gsub with a replacement that repeats the match five times over 4 MiB:
-- the result would pass the 16 MiB limit in the first call, four fifths
-- of the way through.
model { name = "hostile-gsub", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  local s = string.rep("abcd", 1024 * 1024)
  while true do s = s:gsub("(%w)", "%1%1%1%1%1") end
end
function update(db) end
