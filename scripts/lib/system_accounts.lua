-- system_accounts: the accounts that are not people. The contributor
-- models (contributors, contributor-retention, activity-by-category) count
-- the users fedmsg.meta finds in a message (meta.usernames) except these.
-- Edit this one file to change the rule for all of them: a reload restarts
-- them with the new list from their cursors (rows already written keep
-- the old rule; replay into a new database to recount the history).
--
-- Every name below was seen in a real bus message of the shared corpus (the
-- fedmsg.meta test cases and the bus samples): as a user fedmsg.meta
-- reports, or as the envelope's username (the account that sent it, which
-- some processors fall back to). Names are compared exactly, as
-- fedmsg.meta gives them. Write each name as a double-quoted string and
-- no other double quotes: the recount test reads this file as text.
return {
  -- Build systems and release engineering
  "autopen",                    -- buildsys.tag: the Koji tagging robot (tagged into f28 by autopen)
  "bodhi",                      -- buildsys.tag and bodhi: Bodhi tagging builds, authoring automatic comments
  "releng",                     -- bodhi.masher/composer: the release engineering account that runs the mashes
  "mbs/mbs.fedoraproject.org",  -- buildsys.build.state.change: the Module Build Service's Koji principal
  "rawhide",                    -- mailman.receive: the rawhide report and compose check mails
  "fedora-atomic",              -- ci.pipeline: the Atomic CI pipeline
  "simple-koji-ci",             -- pagure: the Koji scratch-build CI bot commenting on pull requests
  "Jenkins",                    -- jenkins: the CI server
  "copr",                       -- copr: the Copr service itself
  -- Services and their sync jobs
  "anitya",                     -- anitya: release-monitoring.org when no person triggered the change
  "upstream-release-monitoring",-- bugzilla, hotness: the-new-hotness filing new-version bugs
  "pkgdb_updater",              -- pkgdb.package.update: the script syncing package summaries
  "pagure",                     -- pagure: the forge acting on its own (mirroring, CI flags)
  "fedimg",                     -- fedimg: cloud image uploads
  "faf",                        -- faf: the crash report aggregator
  "mailman",                    -- mailman: the list server
  "ftpsync",                    -- mirror syncs
  "amqp-bridge",                -- messages relayed from AMQP
  "openshift",                  -- messages sent by OpenShift-hosted apps
  "fedmsg",                     -- the bus's own process user
  "apache",                     -- the web server's process user, on messages sent from web apps
  "root",                       -- cron jobs and scripts run as root
  "git",                        -- infragit and dist-git hooks
  -- Placeholders that are not accounts of anyone
  "nobody",                     -- bugzilla and mailman: no assignee, list robots
  "orphan",                     -- pkgdb: an orphaned package's owner
  "@python",                    -- copr: a group, not a person (copr groups start with @)
}
