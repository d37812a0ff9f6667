-- Release engineering composes (the old "compose" processor):
-- org.fedoraproject.*.compose.<branch>.[<event>.]<start|complete|...>
local u = util

local P = processor{
  name = "compose",
  entry = "comp",
  obj = "Composes",
  icon = nil,
}

-- Topic substrings naming old events, and the text they add to the
-- subtitle, in the order they are tried.
local old_events = {
  {".mash.", " mashing"},
  {".pungify.", " building boot.iso for"},
  {".image.", " building other images for"},
}
local makeup_events = {
  {".make-updates.", ""},
  {".cloudimg-build.", " building images for"},
  {".mash-atomic", " Atomic updates mash for"},
  {".atomic-lorax", " Atomic lorax run for"},
  {".cloudimg-checksum.", " image checksum generation for"},
  {".cloudimg-staging.", " master mirror publication for"},
}
local new_events = {
  {".rsync.", " master mirror publication for"},
}

local function capitalize(s)
  return s:sub(1, 1):upper() .. s:sub(2):lower()
end

function P.subtitle(msg)
  local m, topic = msg.msg, msg.topic
  local kind, evtext = "compose", ""
  for _, group in ipairs({{"old", old_events}, {"makeup", makeup_events}, {"new", new_events}}) do
    for _, ev in ipairs(group[2]) do
      if kind == "compose" and u.contains(topic, ev[1]) then
        kind, evtext = group[1], ev[2]
      end
    end
  end

  local release = "(unknown release)"
  local words = u.words(topic)
  if type(m.branch) == "string" then
    local parts = u.split(m.branch, "Modular-")
    release = capitalize(parts[#parts])
  else
    local has = {}
    for _, w in ipairs(words) do has[w] = true end
    if has.rawhide then release = "Rawhide"
    elseif has.epelbeta then release = "EPEL Beta"
    else
      for _, w in ipairs(words) do
        if #w == 2 and w:match("^%d%d$") then release = w; break end
      end
    end
  end

  local arch = m.arch
  if u.truthy(arch) then arch = " (" .. arch .. ")" else arch = "" end

  local comptext = "compose"
  if kind == "makeup" then comptext = "post-release Cloud/Atomic/Docker respin compose" end
  if u.truthy(m.compose_id) then comptext = comptext .. " " .. m.compose_id end

  local short = m.short
  if short == nil then
    short = "Fedora"
    if type(m.branch) == "string" and u.contains(m.branch:lower(), "modular") then
      short = "Fedora-Modular"
    end
    local old = (kind == "old" or kind == "makeup")
    if release:match("^%d+$") and not old then
      if m.compose_id == nil and arch == "" and not u.contains(topic, "branched") then
        short = "Fedora, Fedora-Atomic, Fedora-Cloud or Fedora-Docker"
      end
    end
  end

  local action = "Did something to do with"
  local last = words[#words]
  if last == "start" then action = "Started"
  elseif last == "complete" or last == "done" or last == "stop" then action = "Completed" end

  return action .. evtext .. " " .. short .. " " .. release .. arch .. " " .. comptext
end

function P.link(msg)
  local loc = msg.msg.location
  if loc == nil then return "https://kojipkgs.fedoraproject.org/compose/" end
  return loc
end

function P.objects(msg)
  local branch = u.words(msg.topic)[5]
  local arch = msg.msg.arch
  if not u.truthy(arch) then arch = "primary" end
  return {branch .. "/" .. arch}
end
