-- openQA, automated distribution tests (org.fedoraproject.*.openqa.*):
-- job events and comments.
local u = util
local has, ends = u.contains, u.endswith

local P = processor{name = "openqa", entry = "openqa", obj = "openQA test results",
  icon = "https://apps.fedoraproject.org/img/icons/openqa.png"}

local function kind(t)
  if has(t, ".job.") then return "job" end
  if has(t, ".comment.") then return "comment" end
end

local function or_(v, d) if v == nil then return d end return v end

local function job_subtitle(m, t)
  local build = m.BUILD
  if build == nil then build = or_(m.build, "") end
  local s = ""
  if has(t, ".stg") then s = "staging " end
  s = s .. "job " .. u.str(or_(m.id, "")) .. " "
  if u.truthy(m.TEST) then
    s = s .. "(test " .. u.str(m.TEST) .. " on " .. u.str(m.MACHINE)
    if u.truthy(m.ISO) then s = s .. " for iso " .. u.str(m.ISO) .. ") "
    elseif u.truthy(m.HDD_1) then s = s .. " for disk " .. u.str(m.HDD_1) .. ") "
    else s = s .. ") " end
  end
  if ends(t, "job.duplicate") then
    local auto = or_(m.auto, "")
    if auto == "0" then auto = "manually " elseif auto == "1" then auto = "automatically " end
    return s .. u.str(auto) .. "duplicated as " .. u.str(m.result) .. " for " .. u.str(build)
  elseif ends(t, "job.restart") then
    return s .. "restarted as " .. u.str(m.result) .. " for " .. u.str(build)
  elseif ends(t, "job.done") then
    s = s .. "completed "
    if u.truthy(m.result) then s = s .. "with result " .. u.str(m.result) .. " " end
    return s .. "for " .. u.str(build) .. ", " .. u.str(or_(m.remaining, "")) .. " remaining jobs"
  elseif ends(t, "job.create") then
    return s .. "created for " .. u.str(build)
  end
  return nil
end

local function comment_subtitle(m, t)
  local text = u.ellipsis(u.str(or_(m.text, "")), 30)
  local action = "did something to"
  if ends(t, "comment.create") then action = "created"
  elseif ends(t, "comment.update") then action = "updated"
  elseif ends(t, "comment.delete") then action = "deleted" end
  local s = u.str(or_(m.user, "someone")) .. " " .. action .. " comment #" .. u.str(m.id) .. " on openQA"
  if u.truthy(m.job_id) then s = s .. " job " .. u.str(m.job_id)
  elseif u.truthy(m.group_id) then s = s .. " group " .. u.str(m.group_id) end
  if text ~= "" then s = s .. ", text: " .. text end
  return s
end

function P.subtitle(msg)
  local k = kind(msg.topic)
  if k == "job" then return job_subtitle(msg.msg, msg.topic) end
  if k == "comment" then return comment_subtitle(msg.msg, msg.topic) end
  return nil
end

function P.link(msg)
  local m = msg.msg
  local base = "https://openqa.fedoraproject.org"
  if has(msg.topic, ".stg") then base = "https://openqa.stg.fedoraproject.org" end
  local k = kind(msg.topic)
  if k == "job" then return base .. "/tests/" .. u.str(m.id) end
  if k == "comment" then
    if u.truthy(m.job_id) then return base .. "/tests/" .. u.str(m.job_id) .. "#comments" end
    if u.truthy(m.group_id) then return base .. "/group_overview/" .. u.str(m.group_id) end
    return base
  end
  return nil
end

function P.objects(msg)
  local m = msg.msg
  local out = {}
  if m.build ~= nil then out[#out + 1] = m.build elseif m.BUILD ~= nil then out[#out + 1] = m.BUILD end
  if m.ISO ~= nil then out[#out + 1] = m.ISO elseif m.HDD_1 ~= nil then out[#out + 1] = m.HDD_1 end
  if kind(msg.topic) == "comment" then
    if u.truthy(m.job_id) then out[#out + 1] = m.job_id end
    if u.truthy(m.group_id) then out[#out + 1] = m.group_id end
  end
  return out
end

function P.usernames(msg)
  local user = msg.msg.user
  if u.truthy(user) then return {user} end
  return {}
end
