-- pungi-koji composes (org.fedoraproject.*.pungi.*), entry point comp2.
local u = util
local F = u.format
local ends = u.endswith

local P = processor{name = "pungi", entry = "comp2", obj = "Composes",
  icon = "https://apps.fedoraproject.org/img/icons/pungi.png"}

local statuses = {STARTED = "started", FINISHED = "just finished",
  DOOMED = "failed in a horrible fire", TERMINATED = "was terminated"}

local function image_of(m)
  local parts = u.split(u.req(m.file), "compose/")
  return parts[#parts]
end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local compose = m.compose_id
  if ends(t, "pungi.compose.status.change") then
    local s = u.req(m.status)
    return F("pungi-koji compose of {compose} {status}", {compose = compose, status = statuses[s] or s})
  elseif ends(t, "pungi.compose.phase.start") then
    return F("pungi-koji started the {phase} phase of the {compose} compose", {compose = compose, phase = u.req(m.phase_name)})
  elseif ends(t, "pungi.compose.phase.stop") then
    return F("pungi-koji finished the {phase} phase of the {compose} compose", {compose = compose, phase = u.req(m.phase_name)})
  elseif ends(t, "pungi.compose.createiso.imagedone") then
    return "pungi-koji finished createiso for " .. image_of(m)
  elseif ends(t, "pungi.compose.createiso.imagefail") then
    return "pungi-koji createiso for " .. image_of(m) .. " failed!"
  elseif ends(t, "pungi.compose.createiso.targets") then
    return "pungi-koji assigned " .. u.len(u.req(m.deliverables)) .. " createiso targets"
  elseif ends(t, "pungi.compose.ostree") then
    return F("pungi-koji ostree compose {compose} produced ostree commit {commitid} for {arch} {ref}",
      {compose = compose, ref = u.req(m.ref), arch = u.req(m.arch), commitid = u.req(m.commitid)})
  elseif ends(t, "pungi.compose.fail.to.start") then
    return F('failed to compose from {config}: "{detail}"', {config = m.config, detail = m.detail})
  end
  return nil
end

function P.link(msg)
  local loc = msg.msg.location
  if loc == nil then return nil end
  -- the original strips any of the characters "/compose" from both ends
  return u.strip_chars(u.strip_chars(loc, "/"), "/compose")
end

function P.objects(msg)
  local m = msg.msg
  if m.deliverables ~= nil then
    return u.collect(m.deliverables, nil, function(d) return u.strip_chars(d, "/") end)
  elseif m.file ~= nil then
    return {u.strip_chars(m.file, "/")}
  elseif m.compose_id ~= nil then
    return {"rawhide/" .. table.concat(u.split(m.compose_id, "."), "/")}
  end
  return nil
end
