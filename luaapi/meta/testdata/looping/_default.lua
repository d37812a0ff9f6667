-- A default processor whose title never returns.
local P = processor{
  name = "looping",
  default = true,
}
function P.title(msg) while true do end end
function P.usernames(msg) return {"someone"} end
