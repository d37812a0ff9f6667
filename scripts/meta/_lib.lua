-- Helpers shared by every rule file, and BASE: the defaults a processor
-- gets for the helpers it does not define.
--
-- A rule file declares processors with processor{...}:
--
--   local P = processor{
--     name  = "Bodhi",   -- the original __name__; the topic must be
--                        -- <prefix>.<lowercased name>[.<rest>]
--     entry = "bodhi",   -- entry point name: processors are tried in entry order
--     prefix = [[org\.fedoraproject\.(dev|stg|prod)]],  -- optional (Go regexp)
--     icon  = "https://...",  -- a string helper is a constant
--   }
--   function P.subtitle(msg) ... end   -- msg is the envelope {topic, msg, ...}
--
-- Helpers: usernames, packages, objects (return an array of strings or a
-- {name = true} table), title, subtitle, link, icon, secondary_icon,
-- agent (return a string or nil). A helper that raises an error (e.g. by
-- indexing a missing field) gives the default: "" or an empty set. JSON
-- null reads as nil (false inside arrays).
--
-- util (Go): sha256, md5, email2fas, nick2fas, split, rsplit, startswith,
-- endswith, contains, strip, lower, replace, ulen, usub, casual_delta,
-- str (Python's "%s" of a value: nil is None, whole numbers print as
-- integers), format(tmpl, vals) (each {key} is str(vals[key])) and
-- format_req (the same, but a missing value is an error, like Python's
-- str.format(**fields) raising KeyError), fmt("{} built {}", a, b) (each
-- {} is str of the next argument). More below.

local u = util

-- u.truthy(v) (Go): Python-like truth: nil, false, "", 0 and empty
-- tables are false.

-- get(t, "a", "b", 1) is t.a.b[1], or nil when any step is missing.
function u.get(t, ...)
  local n = select("#", ...)
  for i = 1, n do
    if type(t) ~= "table" then return nil end
    t = t[select(i, ...)]
  end
  return t
end

-- The dotted words of a string, as an array (Python's s.split('.')).
function u.words(s) return u.split(s, ".") end

-- '.'.join(parts[i..j]) of the topic's dotted words (1-based, inclusive;
-- j defaults to the last, negative counts from the end).
function u.topic_words(msg, i, j)
  local w = u.split(msg.topic, ".")
  local n = #w
  if i < 0 then i = n + i + 1 end
  j = j or n
  if j < 0 then j = n + j + 1 end
  return table.concat(w, ".", i, j)
end

-- The topic without its first three words (the original title).
function u.title(msg)
  local t = msg.topic
  if u.startswith(t, "/topic/") then return t end
  return u.topic_words(msg, 4)
end

local hardcoded_avatars = {
  bodhi = "https://apps.fedoraproject.org/img/icons/bodhi-64.png",
  koschei = "https://apps.fedoraproject.org/img/icons/koschei-64.png",
  taskotron = "https://apps.fedoraproject.org/img/icons/taskotron-64.png",
}

-- The libravatar URL of a Fedora account (via its OpenID).
function u.avatar_url(name)
  if hardcoded_avatars[name] then return hardcoded_avatars[name] end
  return "https://seccdn.libravatar.org/avatar/" ..
    u.sha256("http://" .. name .. ".id.fedoraproject.org/") .. "?s=64&d=retro"
end

function u.avatar_url_from_openid(openid)
  return "https://seccdn.libravatar.org/avatar/" .. u.sha256(openid) .. "?s=64&d=retro"
end

function u.avatar_url_from_email(email)
  return "https://seccdn.libravatar.org/avatar/" .. u.md5(email) .. "?s=64&d=retro"
end



-- Keys of a table, sorted.
function u.keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out, function(a, b) return tostring(a) < tostring(b) end)
  return out
end

function u.len(t)
  if type(t) == "string" then return #t end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- list_to_series({"a","b","c","d"}) is "a, b, and 2 others" (at most n items shown).
function u.list_to_series(items, n, oxford)
  n = n or 3
  if oxford == nil then oxford = true end
  if #items == 0 then return "(nothing)" end
  local seen, list = {}, {}
  for _, i in ipairs(items) do
    if not seen[i] then seen[i] = true; list[#list + 1] = i end
  end
  table.sort(list)  -- unique and sorted, as fedmsg does
  if #list == 1 then return list[1] end
  if #list > n then
    local others = #list - n + 1
    for k = #list, n, -1 do list[k] = nil end
    list[n] = string.format("%d others", others)
  end
  local conj = " and "
  if oxford and #list > 2 then conj = "," .. conj end
  return table.concat(list, ", ", 1, #list - 1) .. conj .. list[#list]
end

-- Defaults of every processor (the original BaseProcessor).
BASE.title = u.title
BASE.subtitle = ""
BASE.link = ""
-- icon: nil unless the processor sets one; secondary_icon: nil.
-- usernames, packages, objects: empty. agent: the single user name.


-- req(v): v, or an error (the original's KeyError) when v is nil, so
-- the helper gives its default.
function u.req(v, what)
  if v == nil then error("missing " .. (what or "field"), 2) end
  return v
end

-- Python-style "%i" of a number (error when it is not a number).
function u.int(v)
  if type(v) ~= "number" then error("not a number", 2) end
  return string.format("%d", v)
end

-- The items of list for which f(item) is true, mapped through g (or kept).
function u.collect(list, f, g)
  local out = {}
  if type(list) ~= "table" then return out end
  for _, x in ipairs(list) do
    if f == nil or f(x) then out[#out + 1] = g and g(x) or x end
  end
  return out
end

-- strip_chars(s, chars): Python's s.strip(chars): removes every leading
-- and trailing character that is one of chars (a set, not a suffix).
function u.strip_chars(s, chars)
  local set = {}
  for i = 1, #chars do set[chars:byte(i)] = true end
  local i, j = 1, #s
  while i <= j and set[s:byte(i)] do i = i + 1 end
  while j >= i and set[s:byte(j)] do j = j - 1 end
  return s:sub(i, j)
end

-- Python's s[:n] .. "..." when s is longer than n characters.
function u.ellipsis(s, n)
  if u.ulen(s) > n then return u.usub(s, n) .. "..." end
  return s
end

-- members(t): what Python's "for x in t" visits: the items of an array,
-- or the keys of an object (sorted). Anything else: an error.
function u.members(t)
  if type(t) ~= "table" then error("not iterable", 2) end
  if t[1] ~= nil then
    local out = {}
    for i, v in ipairs(t) do out[i] = v end
    return out
  end
  return u.keys(t)
end

-- processor_by_entry("pagure_distgit"): another declared processor's
-- table, to reuse its helpers (nil when there is none).
function u.processor_by_entry(entry)
  for _, p in ipairs(PROCESSORS) do
    if (p.entry or p.name:lower()) == entry then return p end
  end
  return nil
end

-- quote_plus(s): Python's urllib quote_plus: spaces become "+", bytes
-- other than letters, digits and "_.-~" become %XX.
function u.quote_plus(s)
  s = u.str(s)
  return (s:gsub("[^%w_%.%-~ ]", function(c) return string.format("%%%02X", c:byte()) end):gsub(" ", "+"))
end

-- urlencode(t): "k1=v1&k2=v2" over t's keys in sorted order.
function u.urlencode(t)
  local parts = {}
  for _, k in ipairs(u.keys(t)) do
    parts[#parts + 1] = u.quote_plus(k) .. "=" .. u.quote_plus(t[k])
  end
  return table.concat(parts, "&")
end
