-- CentOS CI pipelines (org.centos.*): ci.pipeline and the two older
-- allpackages.pipeline / container.pipeline topics.
local u = util

local CENTOS = [[org\.centos\.(dev|stage|prod)]]
local ICON = "https://ci.centos.org/static/ec6de755/images/headshot.png"
local LINK = "http://ci.centos.org/"

-- {topic part after the pipeline name, template, whether {status} is used}
-- tried in order; the first contained in the topic wins.
local templates = {
  {"package.ignore", '{revtype} "{rev}" of package {ns}/{pkg} is being ignored by the {pipeline_name} pipeline on branch {branch}'},
  {"complete", '{revtype} "{rev}" of {kind} {ns}/{pkg} {status} the {pipeline_name} pipeline on branch {branch}', true},
  {"package.complete", '{revtype} {rev} of package {ns}/{pkg} {status} building in the {pipeline_name} pipeline on branch {branch}', true},
  {"package.queued", '{revtype} {rev} of package {ns}/{pkg} is queued to be built in the {pipeline_name} pipeline on branch {branch}'},
  {"package.running", '{revtype} {rev} of package {ns}/{pkg} is being built in the {pipeline_name} pipeline on branch {branch}'},
  {"package.test.functional.complete", '{revtype} {rev} of package {ns}/{pkg} {status} its functional tests in the {pipeline_name} pipeline on branch {branch}', true},
  {"package.test.functional.queued", '{revtype} {rev} of package {ns}/{pkg} is queued for functional testing in the {pipeline_name} pipeline on branch {branch}'},
  {"package.test.functional.running", '{revtype} {rev} of package {ns}/{pkg} is running its functional tests in the {pipeline_name} pipeline on branch {branch}'},
  {"container.test.functional.complete", '{revtype} {rev} of container {ns}/{pkg} {status} its functional tests in the {pipeline_name} pipeline on branch {branch}', true},
  {"container.test.functional.queued", '{revtype} {rev} of container {ns}/{pkg} is queued for functional testing in the {pipeline_name} pipeline on branch {branch}'},
  {"container.test.functional.running", '{revtype} {rev} of container {ns}/{pkg} is running its functional tests in the {pipeline_name} pipeline on branch {branch}'},
  {"compose.complete", '{revtype} {rev} of package {ns}/{pkg} {status} a compose in the {pipeline_name} pipeline on branch {branch}', true},
  {"compose.queued", '{revtype} {rev} of package {ns}/{pkg} is queued for a compose in the {pipeline_name} pipeline on branch {branch}'},
  {"compose.running", '{revtype} {rev} of package {ns}/{pkg} is being part of a compose in the {pipeline_name} pipeline on branch {branch}'},
  {"compose.test.integration.complete", '{revtype} {rev} of package {ns}/{pkg} {status} its tests as part of a compose in the {pipeline_name} pipeline on branch {branch}', true},
  {"compose.test.integration.queued", '{revtype} {rev} of package {ns}/{pkg} is queued for tests as part of a compose in the {pipeline_name} pipeline on branch {branch}'},
  {"compose.test.integration.running", '{revtype} {rev} of package {ns}/{pkg} is being tested as part of a compose in the {pipeline_name} pipeline on branch {branch}'},
  {"image.complete", '{revtype} {rev} of package {ns}/{pkg} {status} being built in an image in the {pipeline_name} pipeline on branch {branch}', true},
  {"image.queued", '{revtype} {rev} of package {ns}/{pkg} is queued to be built in an image in the {pipeline_name} pipeline on branch {branch}'},
  {"image.running", '{revtype} {rev} of package {ns}/{pkg} is being built in an image in the {pipeline_name} pipeline on branch {branch}'},
  {"image.test.smoke.complete", '{revtype} {rev} of package {ns}/{pkg} {status} its tests in an image in the {pipeline_name} pipeline on branch {branch}', true},
  {"image.test.smoke.queued", '{revtype} {rev} of package {ns}/{pkg} is queued to be tested in an image in the {pipeline_name} pipeline on branch {branch}'},
  {"image.test.smoke.running", '{revtype} {rev} of package {ns}/{pkg} is being tested in an image in the {pipeline_name} pipeline on branch {branch}'},
}

-- Sub-pipelines of ci.pipeline, named by the topic.
local variants = {
  {"allpackages-build", "All Packages (Build) CI"},
  {"allpackages-pr", "All Packages (PR) CI"},
  {"allpackages", "All Packages CI"},
  {"container", "Container CI", "container-pr"},
}

local function status_text(s)
  s = s:lower()
  if s == "success" then return "passed"
  elseif s == "aborted" then return "was aborted on"
  elseif s == "unstable" then return "errored" end
  return "failed"
end

local function or_default(v, d)
  if u.truthy(v) then return v end
  return d
end

local function pipeline(name, pipeline_name, entry, obj)
  local P = processor{name = name, entry = entry, prefix = CENTOS, icon = ICON, obj = obj}

  function P.subtitle(msg)
    local m, topic = msg.msg, msg.topic
    local rev = or_default(m.rev, "")
    local revtype
    if u.startswith(rev, "kojitask-") then
      revtype, rev = "Koji task", u.split(rev, "kojitask-")[2]
    elseif u.startswith(rev, "PR-") then
      revtype, rev = "Pull request", u.split(rev, "PR-")[2]
    else
      revtype, rev = "Commit", rev:sub(1, 8)
    end
    local vals = {
      revtype = revtype, rev = rev,
      branch = or_default(m.branch, "unknown_branch"),
      pkg = or_default(m.repo, "unknown_repo"),
      ns = or_default(m.namespace, "unknown_namespace"),
      status = or_default(m.status, "unknown_status"),
      pipeline_name = pipeline_name,
      kind = "package",
    }
    local n = name
    for _, v in ipairs(variants) do
      if u.contains(topic, name .. "." .. v[1]) then
        n = name .. "." .. (v[3] or v[1])
        vals.pipeline_name = v[2]
        break
      end
    end
    if vals.pipeline_name == "Container CI" then vals.kind = "container" end
    for _, t in ipairs(templates) do
      if u.contains(topic, n .. "." .. t[1]) then
        if t[3] then vals.status = status_text(vals.status) end
        return u.format(t[2], vals)
      end
    end
    return ""
  end

  function P.secondary_icon(msg)
    local user = msg.msg.username
    if u.truthy(user) then return u.avatar_url(user) end
    return user
  end

  function P.link(msg)
    local url = msg.msg.build_url
    if url == nil then return LINK end
    return url
  end

  function P.usernames(msg)
    local user = msg.msg.username
    if u.truthy(user) then return {user} end
    return {}
  end

  function P.objects(msg)
    local m = msg.msg
    local parts = {
      or_default(m.namespace, "unknown_namespace"),
      or_default(m.repo, "unknown_pkg"),
      or_default(m.rev, "unknown_rev"),
      or_default(m.branch, "unknown_branch"),
    }
    local rest = u.split(msg.topic, ".pipeline.", 1)[2]
    for _, a in ipairs(u.words(rest)) do parts[#parts + 1] = a end
    return {table.concat(parts, "/")}
  end
  return P
end

pipeline("ci.pipeline", "Atomic CI", "ci", "CI Results")
pipeline("allpackages.pipeline", "All Packages CI", "old_allpackages_ci", "CI AllPackages Results")
pipeline("container.pipeline", "Container CI", "old_container_ci", "CI Container Results")
