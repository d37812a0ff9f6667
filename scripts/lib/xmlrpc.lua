-- XML-RPC for work functions: build a methodCall, read a methodResponse.
--
--   local xmlrpc = require("xmlrpc")
--   local body, status = http.post("koji", "", xmlrpc.call("getBuild", 612324), "text/xml")
--   local build, fault = xmlrpc.response(body)
--
-- Lua values map to XML-RPC as: whole numbers <int> (<i8> beyond 32 bits),
-- other numbers <double>, strings <string>, booleans <boolean>, nil <nil/>,
-- sequences <array>, other tables <struct>. Responses map back the same
-- way; <dateTime.iso8601> and <base64> stay strings.

local M = {}

local entities = {lt = "<", gt = ">", amp = "&", quot = '"', apos = "'"}

local function unescape(s)
  if not s:find("&", 1, true) then
    return s
  end
  return (s:gsub("&(#?x?)(%w+);", function(kind, name)
    if kind == "" then
      return entities[name]
    end
    if kind == "x" then
      return nil -- "&x41;" is no reference; keep it as it is
    end
    local n = tonumber(name, kind == "#x" and 16 or 10)
    if not n or n > 0x10FFFF or (n >= 0xD800 and n < 0xE000) then
      return nil -- not a character; keep the text as it is
    end
    if n < 128 then
      return string.char(n)
    end
    if n < 2048 then
      return string.char(192 + math.floor(n / 64), 128 + n % 64)
    end
    if n < 65536 then
      return string.char(224 + math.floor(n / 4096), 128 + math.floor(n / 64) % 64, 128 + n % 64)
    end
    return string.char(240 + math.floor(n / 262144), 128 + math.floor(n / 4096) % 64, 128 + math.floor(n / 64) % 64, 128 + n % 64)
  end))
end

local function escape(s)
  return (s:gsub("[<>&]", {["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;"}))
end

local function encode(v, out)
  local t = type(v)
  if v == nil then
    out[#out + 1] = "<value><nil/></value>"
  elseif t == "boolean" then
    out[#out + 1] = v and "<value><boolean>1</boolean></value>" or "<value><boolean>0</boolean></value>"
  elseif t == "number" then
    if v == math.floor(v) and v >= -2147483648 and v <= 2147483647 then
      out[#out + 1] = string.format("<value><int>%d</int></value>", v)
    elseif v == math.floor(v) and math.abs(v) < 2 ^ 53 then
      out[#out + 1] = string.format("<value><i8>%.0f</i8></value>", v)
    else
      out[#out + 1] = string.format("<value><double>%.17g</double></value>", v)
    end
  elseif t == "string" then
    out[#out + 1] = "<value><string>" .. escape(v) .. "</string></value>"
  elseif t == "table" then
    local n = #v
    local count = 0
    for _ in pairs(v) do
      count = count + 1
    end
    if n > 0 and n == count then
      out[#out + 1] = "<value><array><data>"
      for i = 1, n do
        encode(v[i], out)
      end
      out[#out + 1] = "</data></array></value>"
    else
      out[#out + 1] = "<value><struct>"
      for k, x in pairs(v) do
        out[#out + 1] = "<member><name>" .. escape(tostring(k)) .. "</name>"
        encode(x, out)
        out[#out + 1] = "</member>"
      end
      out[#out + 1] = "</struct></value>"
    end
  else
    error("xmlrpc.call: a " .. t .. " cannot be sent", 3)
  end
end

-- call(method, ...) -> the methodCall document.
function M.call(method, ...)
  local out = {"<?xml version=\"1.0\"?><methodCall><methodName>", escape(method), "</methodName><params>"}
  local args = {...}
  for i = 1, select("#", ...) do
    out[#out + 1] = "<param>"
    encode(args[i], out)
    out[#out + 1] = "</param>"
  end
  out[#out + 1] = "</params></methodCall>"
  return table.concat(out)
end

-- The parser: a cursor over the document, one tag at a time. It finds
-- plain strings and compares bytes rather than matching patterns: a Lua
-- pattern is compiled on every call, which made parsing a getBuild answer
-- cost milliseconds.

local SPACE = {[32] = true, [9] = true, [10] = true, [13] = true}
local LT, GT, SLASH, QUESTION, BANG = 60, 62, 47, 63, 33

local function fail(msg)
  error("xmlrpc: " .. msg, 0)
end

-- skip moves past whitespace, comments and the XML declaration.
local function skip(s, pos)
  while true do
    while SPACE[s:byte(pos)] do
      pos = pos + 1
    end
    local b1, b2 = s:byte(pos, pos + 1)
    if b1 == LT and b2 == QUESTION then
      local _, e2 = s:find("?>", pos, true)
      if not e2 then
        fail("unterminated <?...?>")
      end
      pos = e2 + 1
    elseif b1 == LT and b2 == BANG and s:sub(pos, pos + 3) == "<!--" then
      local _, e2 = s:find("-->", pos, true)
      if not e2 then
        fail("unterminated comment")
      end
      pos = e2 + 1
    else
      return pos
    end
  end
end

-- tag reads the tag at pos: its name, whether it closes (</x>) or is empty
-- (<x/>), and the position after it.
local function tag(s, pos)
  pos = skip(s, pos)
  local e = s:byte(pos) == LT and s:find(">", pos, true)
  if not e or e == pos + 1 then
    fail("expected a tag at byte " .. pos .. ": " .. s:sub(pos, pos + 40))
  end
  local from, to = pos + 1, e - 1
  local close = s:byte(from) == SLASH
  if close then
    from = from + 1
  end
  local empty = s:byte(to) == SLASH
  if empty then
    to = to - 1
  end
  local name = s:sub(from, to)
  local sp = name:find(" ", 1, true) or name:find("\n", 1, true) or name:find("\t", 1, true)
  if sp then
    name = name:sub(1, sp - 1) -- attributes, unused in XML-RPC
  end
  if name == "" then
    fail("expected a tag at byte " .. pos .. ": " .. s:sub(pos, pos + 40))
  end
  return name, close, empty, e + 1
end

local function expect(s, pos, want, closing)
  local name, close, _, after = tag(s, pos)
  if name ~= want or close ~= (closing or false) then
    fail("expected <" .. (closing and "/" or "") .. want .. "> at byte " .. pos .. ", found <" .. (close and "/" or "") .. name .. ">")
  end
  return after
end

-- text reads character data up to the closing tag of name.
local function text(s, pos, name)
  local closing = "</" .. name .. ">"
  local b = s:find(closing, pos, true)
  if not b then
    fail("<" .. name .. "> is not closed")
  end
  return s:sub(pos, b - 1), b + #closing
end

local value

local scalars = {
  int = tonumber, i4 = tonumber, i8 = tonumber, double = tonumber,
  string = unescape, ["dateTime.iso8601"] = unescape, base64 = function(x) return (x:gsub("%s", "")) end,
  boolean = function(x)
    x = x:match("^%s*(.-)%s*$")
    return x == "1" or x == "true"
  end,
}

-- value reads <value>...</value> at pos; it returns the Lua value and the
-- position after it.
value = function(s, pos)
  local name, close, empty, after = tag(s, pos)
  if name ~= "value" or close then
    fail("expected <value> at byte " .. pos)
  end
  if empty then
    return "", after
  end
  local inner = skip(s, after)
  if s:byte(inner) ~= LT or s:byte(inner + 1) == SLASH then
    -- A bare <value>text</value> is a string.
    local raw, rest = text(s, after, "value")
    return unescape(raw), rest
  end
  local t, tclose, tempty, p = tag(s, inner)
  if tclose then
    fail("unexpected </" .. t .. "> in <value>")
  end
  local v
  if t == "nil" then
    if not tempty then
      p = expect(s, p, "nil", true)
    end
  elseif scalars[t] then
    local raw = ""
    if not tempty then
      raw, p = text(s, p, t)
    end
    v = scalars[t](raw)
    if v == nil then
      fail("bad <" .. t .. "> " .. raw)
    end
  elseif t == "struct" then
    v = {}
    if not tempty then
      while true do
        local m, mclose, _, mp = tag(s, p)
        if m == "struct" and mclose then
          p = mp
          break
        end
        if m ~= "member" or mclose then
          fail("expected <member> in <struct> at byte " .. p)
        end
        mp = expect(s, mp, "name")
        local key
        key, mp = text(s, mp, "name")
        local x
        x, mp = value(s, mp)
        v[unescape(key)] = x
        p = expect(s, mp, "member", true)
      end
    end
  elseif t == "array" then
    v = {}
    if not tempty then
      local d, dclose, dempty, dp = tag(s, p)
      if d ~= "data" or dclose then
        fail("expected <data> in <array>")
      end
      p = dp
      if not dempty then
        while true do
          local q = skip(s, p)
          if s:byte(q) == LT and s:byte(q + 1) == SLASH then
            p = expect(s, q, "data", true)
            break
          end
          local x
          x, p = value(s, q)
          v[#v + 1] = x
        end
      end
      p = expect(s, p, "array", true)
    end
  else
    fail("unknown type <" .. t .. ">")
  end
  return v, expect(s, p, "value", true)
end

-- response(xml) -> value, or nil and the fault string. A document that is
-- not a methodResponse raises an error.
function M.response(body)
  if type(body) ~= "string" then
    fail("the response is a " .. type(body) .. ", not a document")
  end
  local pos = expect(body, 1, "methodResponse")
  local name, _, _, p = tag(body, pos)
  if name == "fault" then
    local f = value(body, p)
    if type(f) ~= "table" then
      return nil, "fault"
    end
    return nil, tostring(f.faultString or f.faultCode or "fault")
  end
  if name ~= "params" then
    fail("expected <params> or <fault>, found <" .. name .. ">")
  end
  p = expect(body, p, "param")
  local v
  v, p = value(body, p)
  return v
end

return M
