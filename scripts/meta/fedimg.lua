-- fedimg, uploads of cloud images (org.fedoraproject.*.fedimg.*).
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "fedimg", entry = "fedimg", obj = "New cloud image upload",
  icon = "https://apps.fedoraproject.org/img/icons/fedimg.png"}

local upload = {
  started = "{image_name} started uploading to {dest}",
  completed = "{image_name} finished uploading to {dest} ({ami}, {virt}, {vol})",
  failed = "{image_name} failed to upload to {dest}",
}
local test = {
  started = "{image_name} started testing on {dest} ({ami}, {virt}, {vol})",
  completed = "{image_name} finished testing on {dest} ({ami}, {virt}, {vol})",
  failed = "{image_name} failed testing on {dest} ({ami}, {virt}, {vol})",
}

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local extra = m.extra
  if type(extra) ~= "table" then extra = {} end
  local v = {image_name = u.req(m.image_name), dest = u.req(m.destination),
    ami = extra.id, virt = extra.virt_type, vol = extra.vol_type,
    source = extra.source_image_id}
  if has(t, "image.upload") then
    local tmpl = upload[m.status]
    if tmpl then return F(tmpl, v) end
  end
  if has(t, "image.test") then
    return F(test[m.status] or "", v)
  end
  if has(t, "image.publish") then
    return F("{image_name} published in region, {dest} ({ami}, {virt}, {vol})", v)
  end
  if has(t, "image.copy") then
    return F("{image_name} copied to {dest} using source image, {source} ({ami}, {virt}, {vol})", v)
  end
  return nil
end

function P.objects(msg)
  local t, status = msg.topic, msg.msg.status
  if has(t, "image.upload") then return {"image/upload/" .. u.req(status)} end
  if has(t, "image.test") then return {"image/test/" .. u.req(status)} end
  return {}
end
