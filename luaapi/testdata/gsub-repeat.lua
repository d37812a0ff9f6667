-- gsub with a replacement that repeats the match, over 4 MiB, again and again.
model { name = "hostile-gsub", summary = "s", description = "d",
  columns = {{name = "n", type = "integer"}} }
function process(msg)
  local s = string.rep("abcd", 1024 * 1024)
  while true do s = s:gsub("(%w)", "%1%1%1%1") end
end
function update(db) end
