-- Fedocal, the Fedora calendar (org.fedoraproject.*.fedocal.*).
local u = util
local F = u.format
local has = u.contains

local P = processor{name = "fedocal", entry = "fedocal", obj = "Calendar Events",
  icon = "https://apps.fedoraproject.org/calendar/static/calendar.png"}

local function common(m)
  return m.agent, u.get(m, "calendar", "calendar_name"), u.get(m, "meeting", "meeting_name")
end

local tmpls = {
  {"fedocal.meeting.reminder", 'Friendly reminder!  The "{meeting}" meeting from the "{calendar}" calendar starts {when}'},
  {"fedocal.meeting.update", '{user} updated the "{meeting}" meeting from the "{calendar}" calendar'},
  {"fedocal.meeting.delete", '{user} deleted the "{meeting}" meeting from the "{calendar}" calendar'},
  {"fedocal.meeting.new", '{user} created a "{meeting}" meeting in the "{calendar}" calendar'},
  {"fedocal.calendar.new", '{user} created a whole new "{calendar}" calendar'},
  {"fedocal.calendar.update", '{user} updated the "{calendar}" calendar'},
  {"fedocal.calendar.delete", '{user} deleted the "{calendar}" calendar'},
  {"fedocal.calendar.clear", '{user} cleared the "{calendar}" calendar of all its meetings'},
  {"fedocal.calendar.upload", '{user} uploaded an iCalendar file into the calendar "{calendar}"'},
}

function P.subtitle(msg)
  local m = msg.msg
  local user, cal, meeting = common(m)
  local v = {user = user, calendar = cal, meeting = meeting}
  for i, x in ipairs(tmpls) do
    if has(msg.topic, x[1]) then
      if i == 1 then
        -- The original counts from the wall clock; we count from the
        -- message's own time so that a replay says the same.
        local mt = u.req(m.meeting)
        v.when = u.casual_delta(u.req(mt.meeting_date) .. " " .. u.req(mt.meeting_time_start), msg.timestamp)
      end
      return F(x[2], v)
    end
  end
  return ""
end

function P.secondary_icon(msg)
  local a = msg.msg.agent
  if a == nil then return nil end
  return u.avatar_url(a)
end

function P.link(msg)
  local m = msg.msg
  local base = "https://apps.fedoraproject.org/calendar/"
  local id = u.get(m, "meeting", "meeting_id")
  if id ~= nil then return base .. "meeting/" .. u.int(id) .. "/" end
  return base .. u.req(u.get(m, "calendar", "calendar_name")) .. "/"
end

function P.usernames(msg)
  local a = msg.msg.agent
  if a == nil then return {} end
  return {a}
end

function P.objects(msg)
  local user, cal, meeting = common(msg.msg)
  local w = u.words(msg.topic)
  if not u.truthy(meeting) then return {u.str(cal) .. "/" .. w[#w]} end
  return {u.str(cal) .. "/meetings/" .. u.str(meeting) .. "/" .. w[#w]}
end
