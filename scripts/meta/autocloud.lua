-- Autocloud, automated tests of cloud images (org.fedoraproject.*.autocloud.*).
-- v2 messages carry compose_id or compose_job_id (or use autocloud.compose topics).
local u = util
local F = u.format

local ICON = "https://apps.fedoraproject.org/img/icons/fedimg.png"
local P = processor{name = "autocloud", entry = "autocloud", obj = "Cloud Image Test", icon = ICON,
  secondary_icon = ICON}

local function has(t, s) return u.contains(t, s) end
local function req(v) if v == nil then error("missing field", 2) end return v end

local function is_v2(msg)
  local m = msg.msg
  return m.compose_id ~= nil or m.compose_job_id ~= nil or has(msg.topic, "autocloud.compose")
end

local image_v1 = {
  queued = "{image_name} is {status} for testing",
  running = "The tests for the {image_name} have started {status}",
  aborted = "The tests for the {image_name} have been {status}",
  failed = "The tests for the {image_name} {status}",
  success = "The tests for {image_name} were a {status}",
}
local image_v2 = {
  queued = "{image_name}({compose_id}) is {status} for testing",
  running = "The tests for the {image_name}({compose_id}) have started {status}",
  aborted = "The tests for the {image_name}({compose_id}) have been {status}",
  failed = "The tests for the {image_name}({compose_id}) {status}",
  success = "The tests for {image_name}({compose_id}) were a {status}",
}
local compose_v2 = {
  queued = "{compose_id} is {status} for testing",
  running = "{compose_id} tests have started {status}",
  completed = "{compose_id} tests have {status}",
}

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local v = {status = req(m.status)}
  if is_v2(msg) then
    if has(t, "autocloud.image") then
      v.compose_id, v.image_name = req(m.compose_id), req(m.image_name)
      if u.truthy(m.release) then v.image_name = v.image_name .. " (" .. u.str(m.release) .. ")" end
      return F(req(image_v2[v.status]), v)
    elseif has(t, "autocloud.compose") then
      v.compose_id = m.id
      if v.compose_id == nil then v.compose_id = m.compose_id or "A compose" end
      return F(req(compose_v2[v.status]), v)
    end
    return nil
  end
  v.image_name = req(m.image_name)
  if has(t, "autocloud.image") then
    if u.truthy(m.release) then v.image_name = v.image_name .. " (" .. u.str(m.release) .. ")" end
    return F(req(image_v1[v.status]), v)
  end
  return nil
end

function P.link(msg)
  local m, t = msg.msg, msg.topic
  if is_v2(msg) then
    if has(t, "autocloud.image") then
      if u.truthy(m.job_id) then return "https://apps.fedoraproject.org/autocloud/jobs/" .. u.str(m.job_id) .. "/output" end
      return req(m.image_url)
    elseif has(t, "autocloud.compose") then
      if m.compose_job_id ~= nil then return "https://apps.fedoraproject.org/autocloud/jobs/" .. u.str(m.compose_job_id) end
    end
    return "https://apps.fedoraproject.org/autocloud/"
  end
  if u.truthy(m.job_id) then return "https://apps.fedoraproject.org/autocloud/jobs/" .. u.str(m.job_id) .. "/output" end
  return req(m.image_url)
end

function P.objects(msg)
  local m, t = msg.msg, msg.topic
  local status = req(m.status)
  if is_v2(msg) then
    if has(t, "autocloud.image") then return {"autocloud/image/" .. status} end
    if has(t, "autocloud.compose") then return {"autocloud/compose/" .. status} end
    return {}
  end
  return {"autocloud/image/" .. status}
end
