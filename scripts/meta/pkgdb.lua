-- The package database (org.fedoraproject.*.pkgdb.*).
local u = util
local F = u.format

local P = processor{name = "Pkgdb", entry = "pkgdb", obj = "Package ACL Updates",
  icon = "https://apps.fedoraproject.org/packages/images/icons/package_128x128.png"}

-- The namespace whose packages count as packages (the original's config).
P.namespace = "rpms"

local function agent(m)
  local a = m.agent
  if a == nil then error("no agent") end
  if type(a) == "table" then a = a[1] end
  return a
end

local function req(v) if v == nil then error("missing field", 2) end return v end

-- namespace, name and branch of m.package_listing
local function listing(pl)
  req(pl)
  local pkg = req(pl.package)
  return pkg.namespace or "rpms", req(pkg.name), pl.collection and pl.collection.branchname
end

local function pkg_of(m)
  -- package_listing.package, else m.package (a name or a dict)
  local ns, name
  if type(m.package_listing) == "table" and type(m.package_listing.package) == "table"
      and m.package_listing.package.name ~= nil then
    ns, name = m.package_listing.package.namespace or "rpms", m.package_listing.package.name
  else
    ns, name = m.namespace or "rpms", req(m.package)
  end
  if type(name) == "table" then
    ns, name = name.namespace or ns, req(name.name)
  end
  return ns, name
end

local function pkgtable(p) req(p); return p.namespace or "rpms", req(p.name) end

local function ends(t, s) return u.endswith(t, s) end
local function has(t, s) return u.contains(t, s) end

function P.subtitle(msg)
  local m, t = msg.msg, msg.topic
  local v = {}
  if has(t, "pkgdb.acl.update") then
    v.namespace, v.package, v.branch = listing(m.package_listing)
    v.user, v.status, v.acl, v.agent = req(m.username), req(m.status), req(m.acl), agent(m)
    return F("{agent} changed {user}'s '{acl}' permission on {namespace}/{package} ({branch}) to '{status}'", v)
  elseif has(t, "pkgdb.branch.clone") then
    v.agent, v.namespace, v.package, v.branch, v.master = agent(m), m.namespace or "rpms", req(m.package), req(m.branch), req(m.master)
    return F("{agent} branched {namespace}/{package} {branch} from {master}", v)
  elseif has(t, "pkgdb.package.update.status") then
    v.extra = ""
    if m.package_listing ~= nil then v.extra = " in " .. u.str(m.package_listing.collection.branchname) end
    v.verb = "made some updates to"
    for _, sm in ipairs({{"Orphaned", "unorphaned", "orphaned"}, {"Retired", "unretired", "retired"}}) do
      if m.prev_status == sm[1] and m.status ~= sm[1] then v.verb = sm[2]
      elseif m.prev_status ~= sm[1] and m.status == sm[1] then v.verb = sm[3] end
    end
    v.agent = agent(m)
    v.namespace, v.package = pkg_of(m)
    return F("{agent} {verb} {namespace}/{package}{extra}", v)
  elseif ends(t, "pkgdb.package.update") then
    v.agent = agent(m)
    v.namespace, v.package = pkg_of(m)
    if m.fields ~= nil then
      v.fields = table.concat(m.fields, ", ")
      return F("{agent} updated: {fields} of {namespace}/{package}", v)
    end
    return F("{agent} made some updates to {namespace}/{package}", v)
  elseif has(t, "pkgdb.critpath.update") then
    return F("{agent} altered the critpath status for some packages", {agent = agent(m)})
  elseif ends(t, "pkgdb.package.new") then
    v.agent = agent(m)
    v.namespace, v.package, v.branch = listing(m.package_listing)
    return F("{agent} added a new package '{namespace}/{package}' ({branch})", v)
  elseif has(t, "pkgdb.acl.request.toggle") then
    v.namespace, v.package, v.branch = listing(m.package_listing)
    v.acl, v.agent, v.action = req(m.acl), agent(m), req(m.acl_action)
    return F("{agent} has {action} '{acl}' on {namespace}/{package} ({branch})", v)
  elseif has(t, "pkgdb.package.retire") then
    v.namespace, v.package, v.branch = listing(m.package_listing)
    v.action, v.agent = req(m.retirement), agent(m)
    return F("{agent} {action} {namespace}/{package} ({branch})!", v)
  elseif has(t, "pkgdb.owner.update") then
    v.owner = m.package_listing.point_of_contact
    if v.owner == nil then v.owner = req(m.package_listing.owner) end
    v.namespace, v.package, v.branch = listing(m.package_listing)
    v.agent = agent(m)
    return F("{agent} changed owner of {namespace}/{package} ({branch}) to '{owner}'", v)
  elseif has(t, "pkgdb.acl.user.remove") then
    v.namespace, v.package = pkgtable(m.package_listings[1].package)
    v.user, v.agent = req(m.username), agent(m)
    local b = {}
    for _, p in ipairs(m.package_listings) do b[#b + 1] = p.collection.branchname end
    v.branches = table.concat(b, ", ")
    return F("{agent} removed {user} from {namespace}/{package} ({branches})", v)
  elseif has(t, "pkgdb.branch.start") then
    return F("{agent} started a branch of {to} from {from}",
      {agent = agent(m), from = m.collection_from.branchname, to = m.collection_to.branchname})
  elseif has(t, "pkgdb.branch.complete") then
    return F("{agent}'s branch of {to} from {from} completed",
      {agent = agent(m), from = m.collection_from.branchname, to = m.collection_to.branchname})
  elseif has(t, "pkgdb.collection.new") then
    return F("{agent} created a new collection for {name} {version}",
      {agent = agent(m), name = m.collection.name, version = m.collection.version})
  elseif has(t, "pkgdb.collection.update") then
    return F("{agent} updated the following fields of the {name} {version} collection: {fields}",
      {agent = agent(m), name = m.collection.name, version = m.collection.version, fields = table.concat(m.fields, ", ")})
  elseif has(t, "pkgdb.package.delete") then
    v.agent = agent(m)
    v.namespace, v.package = pkgtable(m.package)
    return F("{agent} deleted the '{namespace}/{package}' package from the pkgdb", v)
  elseif has(t, "pkgdb.package.branch.delete") then
    v.agent = agent(m)
    v.namespace, v.package, v.branch = listing(m.package_listing)
    return F("{agent} deleted the {branch} branch of the '{namespace}/{package}' package", v)
  elseif ends(t, "pkgdb.package.branch.new") then
    v.agent = agent(m)
    v.namespace, v.package = pkgtable(m.package)
    v.branch = m.package_listing.collection.branchname
    return F("{agent} created the branch '{branch}' for the package '{namespace}/{package}'", v)
  elseif has(t, "pkgdb.acl.delete") then
    local a = m.acl
    v.namespace, v.package = pkgtable(a.packagelist.package)
    v.branch, v.acl, v.user, v.agent = a.packagelist.collection.branchname, a.acl, a.fas_name, req(m.agent)
    return F("{agent} deleted {user}'s {acl} rights from {namespace}/{package} ({branch})", v)
  elseif ends(t, "pkgdb.package.branch.request") then
    v.namespace, v.package = pkgtable(m.package)
    v.new_branch, v.agent = m.collection_to.branchname, req(m.agent)
    return F("{agent} requested branch {new_branch} for package {namespace}/{package}", v)
  elseif ends(t, "pkgdb.package.new.request") then
    v.namespace, v.package = m.info.namespace or "rpms", req(m.info.pkg_name)
    v.branch, v.agent = m.collection.branchname, req(m.agent)
    return F("{agent} requested package {namespace}/{package} on branch {branch}", v)
  elseif ends(t, "pkgdb.admin.action.status.update") then
    local a = m.action
    v.agent, v.owner, v.branch = req(m.agent), req(a.user), a.collection.branchname
    if type(a.info) == "table" and a.info.pkg_name ~= nil then
      v.namespace, v.package = a.info.namespace or "rpms", a.info.pkg_name
    else
      v.namespace, v.package = pkgtable(a.package)
    end
    local subs = {["request.package"] = "package request", ["request.branch"] = "branch request"}
    v.action = subs[a.action] or req(a.action)
    v.old_status, v.new_status, v.message = req(m.old_status), req(m.new_status), a.message
    local tmpl = "{agent} changed {owner}'s {action} for {namespace}/{package} in {branch} from {old_status} to {new_status}"
    if u.truthy(v.message) then tmpl = tmpl .. " with message: {message}" end
    return F(tmpl, v)
  elseif ends(t, "pkgdb.package.critpath.update") then
    v.agent = req(m.agent)
    v.action = m.critpath and "set" or "unset"
    v.namespace, v.package = pkgtable(m.package)
    v.branches = table.concat(m.branches, ", ")
    return F("{agent} {action} the critpath flag on the {namespace}/{package} package ({branches})", v)
  elseif ends(t, "pkgdb.package.monitor.update") then
    v.agent, v.status = req(m.agent), req(m.status)
    v.namespace, v.package = pkgtable(m.package)
    return F("{agent} set the monitor flag of {namespace}/{package} to {status}", v)
  elseif ends(t, "pkgdb.package.unretire.request") then
    v.agent, v.branch = req(m.agent), m.collection.branchname
    v.namespace, v.package = pkgtable(m.package)
    return F("{agent} asks that {namespace}/{package} be unretired on {branch}", v)
  elseif ends(t, "pkgdb.package.koschei.update") then
    v.agent, v.status = req(m.agent), req(m.status)
    v.namespace, v.package = pkgtable(m.package)
    return F("{agent} set the koschei monitoring flag of {namespace}/{package} to {status}", v)
  end
  return nil
end

function P.secondary_icon(msg)
  local m = msg.msg
  local user
  if m.agent ~= nil then user = agent(m) end
  if m.username ~= nil then user = m.username end
  if not u.truthy(user) then return "" end
  return u.avatar_url(user)
end

function P.usernames(msg)
  local m = msg.msg
  local users = {}
  if m.agent ~= nil then users[#users + 1] = agent(m) end
  if type(m.acl) == "table" and m.acl.fas_name ~= nil then users[#users + 1] = m.acl.fas_name end
  if m.username ~= nil then users[#users + 1] = m.username end
  local out = {}
  for _, x in ipairs(users) do if x ~= "orphan" then out[#out + 1] = x end end
  return out
end

local function pyl(v) -- str(v).lower() for booleans and strings
  return u.str(v):lower()
end

function P.objects(msg)
  local m, t = msg.msg, msg.topic
  local pl = m.package_listing
  if has(t, "pkgdb.acl.update") then
    return {F("{p}/acls/{b}/{acl}/{user}", {p = pl.package.name, b = pl.collection.branchname, acl = req(m.acl), user = req(m.username)})}
  elseif ends(t, "pkgdb.package.new") then
    return {u.str(pl.package.name) .. "/create"}
  elseif has(t, "pkgdb.acl.request.toggle") then
    return {F("{p}/acls/{b}/{acl}/{user}", {p = pl.package.name, b = pl.collection.branchname, acl = req(m.acl), user = req(m.agent)})}
  elseif has(t, "pkgdb.package.retire") then
    return {u.str(pl.package.name) .. "/retire"}
  elseif has(t, "pkgdb.acl.user.remove") then
    return {u.str(m.package_listings[1].package.name) .. "/remove/" .. u.str(req(m.username))}
  elseif has(t, "pkgdb.owner.update") then
    return {u.str(pl.package.name) .. "/owner/" .. u.str(pl.collection.branchname)}
  elseif has(t, "pkgdb.package.update") then
    local p
    if type(pl) == "table" and type(pl.package) == "table" and pl.package.name ~= nil then p = pl.package.name
    else p = req(m.package) end
    if type(p) == "table" then p = req(p.name) end
    return {u.str(p) .. "/update"}
  elseif has(t, "pkgdb.branch.clone") then
    return {u.str(req(m.package)) .. "/branch"}
  elseif has(t, "pkgdb.package.delete") then
    return {u.str(m.package.name) .. "/package/delete"}
  elseif has(t, "pkgdb.package.branch.delete") then
    return {u.str(pl.package.name) .. "/" .. u.str(pl.collection.branchname) .. "/delete"}
  elseif has(t, "pkgdb.package.branch.new") then
    return {u.str(m.package.name) .. "/" .. u.str(pl.collection.branchname) .. "/new"}
  elseif has(t, "pkgdb.acl.delete") then
    local a = m.acl
    return {F("{p}/acls/{b}/{acl}/{user}", {p = a.packagelist.package.name, b = a.packagelist.collection.branchname, acl = a.acl, user = a.fas_name})}
  elseif ends(t, "pkgdb.package.branch.request") then
    return {F("{p}/branch/request/{b}/{user}", {p = m.package.name, b = m.collection_to.branchname, user = req(m.agent)})}
  elseif ends(t, "pkgdb.package.new.request") then
    return {F("new/package/request/{p}/{b}/{user}", {p = m.info.pkg_name, b = m.collection.branchname, user = req(m.agent)})}
  elseif ends(t, "pkgdb.admin.action.status.update") then
    local a = m.action
    local p
    if type(a.info) == "table" and a.info.pkg_name ~= nil then p = a.info.pkg_name else p = a.package.name end
    return {F("action/{id}/status/{p}/{b}/{user}", {id = a.id, p = p, b = a.collection.branchname, user = req(m.agent)})}
  elseif ends(t, "pkgdb.package.critpath.update") then
    return {u.str(m.package.name) .. "/critpath"}
  elseif ends(t, "pkgdb.package.monitor.update") then
    return {u.str(m.package.name) .. "/monitor/" .. pyl(m.status)}
  elseif ends(t, "pkgdb.package.koschei.update") then
    return {u.str(m.package.name) .. "/koschei/" .. pyl(m.status)}
  elseif ends(t, "pkgdb.package.unretire.request") then
    return {u.str(m.package.name) .. "/unretire/" .. u.str(m.collection.branchname)}
  end
  return {}
end

function P.packages(msg)
  local m, want = msg.msg, P.namespace
  local out = {}
  local function add(p, nskey)
    if type(p) ~= "table" then return end
    local ns = p[nskey or "namespace"]
    if ns == nil or ns == want then out[#out + 1] = p.name end
  end
  if type(m.package_listing) == "table" then add(m.package_listing.package) end
  if type(m.package_listings) == "table" then
    for _, pl in ipairs(m.package_listings) do if type(pl) == "table" then add(pl.package) end end
  end
  if type(m.package) == "string" then
    if m.namespace == nil or m.namespace == want then out[#out + 1] = m.package end
  else
    add(m.package)
  end
  if type(m.acl) == "table" and type(m.acl.packagelist) == "table" then add(m.acl.packagelist.package) end
  if type(m.info) == "table" and m.info.pkg_name ~= nil then
    if m.info.pkg_namespace == nil or m.info.pkg_namespace == want then out[#out + 1] = m.info.pkg_name end
  end
  if type(m.action) == "table" then
    if type(m.action.info) == "table" and m.action.info.pkg_name ~= nil and m.action.info.pkg_namespace == nil then
      out[#out + 1] = m.action.info.pkg_name
    end
    add(m.action.package)
  end
  return out
end

local LINK = "https://admin.fedoraproject.org/pkgdb/package/{namespace}/{package}/"

function P.link(msg)
  local m, t = msg.msg, msg.topic
  local v = {}
  if has(t, "pkgdb.package.new.request") then
    v.namespace, v.package = m.info.namespace or "rpms", req(m.info.pkg_name)
    return F(LINK, v)
  end
  if has(t, "pkgdb.admin.action.status.update") then
    local a = m.action
    if type(a.info) == "table" and a.info.pkg_name ~= nil then
      v.namespace, v.package = a.info.namespace or "rpms", a.info.pkg_name
    else
      v.namespace, v.package = pkgtable(a.package)
    end
    return F(LINK, v)
  end
  for _, s in ipairs({"pkgdb.acl.update", "pkgdb.acl.request.toggle", "pkgdb.owner.update",
      "pkgdb.package.retire", "pkgdb.package.new", "pkgdb.package.branch.new"}) do
    if has(t, s) then
      v.namespace, v.package = listing(m.package_listing)
      return F(LINK, v)
    end
  end
  if has(t, "pkgdb.acl.user.remove") then
    v.namespace, v.package = pkgtable(m.package_listings[1].package)
    return F(LINK, v)
  end
  for _, s in ipairs({"pkgdb.package.update", "pkgdb.branch.clone", "package.branch.request"}) do
    if has(t, s) then
      v.namespace, v.package = pkg_of(m)
      return F(LINK, v)
    end
  end
  return ""
end
