-- A default processor whose title allocates a gigabyte through string.rep.
local P = processor{
  name = "allocating",
  default = true,
}
function P.title(msg)
  local t = {}
  for i = 1, 1000 do t[i] = string.rep("x", 1024 * 1024) end
  return "never"
end
function P.usernames(msg) return {"someone"} end
