-- summershum, hashes of the source files in the lookaside cache
-- (org.fedoraproject.*.summershum.*). The file is under msg.original.
local u = util
local ends = u.endswith

local P = processor{name = "summershum", entry = "summershum", obj = "Source File Hashes",
  icon = "https://raw.githubusercontent.com/fedora-infra/summershum/develop/summershum.png"}

local function orig(msg) return u.req(msg.msg.original) end

function P.subtitle(msg)
  local t = msg.topic
  local tmpl = "(unhandled)"
  if ends(t, "fail") then tmpl = "yikes!  summershum failed to process {filename} for {name}"
  elseif ends(t, "complete") then tmpl = "summershum ingested {filename} for {name}"
  elseif ends(t, "start") then tmpl = "summershum started working on {filename} for {name}" end
  return u.format_req(tmpl, orig(msg))
end

function P.secondary_icon(msg) return u.avatar_url(u.req(orig(msg).agent)) end
function P.usernames(msg) return {u.req(orig(msg).agent)} end
function P.packages(msg) return {u.req(orig(msg).name)} end

function P.objects(msg)
  local o = orig(msg)
  return {"digests/" .. u.req(o.name) .. "/" .. u.req(o.filename) .. "/" .. u.req(o.md5sum)}
end

function P.link(msg)
  local o = orig(msg)
  local path = o.path
  if path == nil then
    path = u.req(o.name) .. "/" .. u.req(o.filename) .. "/" .. u.req(o.md5sum) .. "/" .. o.filename
  end
  return "http://pkgs.fedoraproject.org/lookaside/pkgs/" .. u.str(path)
end
