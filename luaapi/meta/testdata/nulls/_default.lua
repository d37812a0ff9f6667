-- Shows how a rule sees JSON null: the title describes msg.list and
-- msg.gone.
local P = processor{
  name = "nulls",
  default = true,
}
function P.title(msg)
  local l = msg.msg.list
  return #l .. " " .. tostring(l[1]) .. " " .. tostring(l[2]) .. " " .. tostring(l[3]) .. " " .. tostring(msg.msg.gone)
end
