-- Koschei, continuous rebuilds of Fedora packages (org.fedoraproject.*.koschei.*).
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "koschei", entry = "koschei", obj = "Watched packages",
  icon = "https://fedoraproject.org/w/uploads/e/e9/Koschei.png"}

local package_states = {
  failing = "{name}'s builds started to fail",
  ok = "{name}'s builds are back to normal",
  ignored = "{name} became retired or ignored",
  unresolved = "{name}'s dependencies failed to resolve",
}
local collection_states = {
  ok = "{collection} buildroot was fixed",
  unresolved = "{collection} buildroot was broken",
}

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local tmpl
  local v = {koji_instance = u.req(m.koji_instance)}
  if has(t, "koschei.package.state.change") then
    if m.new == "ok" and m.old == "ignored" then tmpl = "{name} added to Koschei"
    else tmpl = u.req(package_states[m.new]) end
    tmpl = tmpl .. " in {collection}"
    v.name = u.req(m.name)
    v.collection = m.collection_name
    if v.collection == nil then v.collection = m.repo end
  elseif has(t, "koschei.collection.state.change") then
    if m.new == "ok" and m.old == "unknown" then tmpl = "{collection} added to Koschei"
    else tmpl = u.req(collection_states[m.new]) end
    v.collection = u.req(m.collection_name)
  else
    error("unknown koschei topic")
  end
  if v.koji_instance ~= "primary" then tmpl = tmpl .. " ({koji_instance})" end
  return F(tmpl, v)
end

function P.secondary_icon(msg)
  if has(msg.topic, "koschei.package.state.change") then
    return "https://apps.fedoraproject.org/packages/images/icons/" .. u.str(u.req(msg.msg.name)) .. ".png"
  end
  return nil
end

function P.link(msg)
  local m, t = msg.msg, msg.topic
  local base = "https://apps.fedoraproject.org/koschei"
  if has(t, "koschei.package.state.change") then
    local url = base .. "/package/" .. u.str(u.req(m.name))
    if m.collection ~= nil then url = url .. "?collection=" .. u.str(m.collection) end
    return url
  elseif has(t, "koschei.collection.state.change") then
    return base .. "/collection/" .. u.str(u.req(m.collection))
  end
  error("unknown koschei topic")
end

function P.packages(msg)
  if has(msg.topic, "koschei.package.state.change") then return {u.req(msg.msg.name)} end
  return {}
end
