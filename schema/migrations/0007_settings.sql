-- The daemon's own durable facts that belong to no model, such as the
-- name of its AMQP queue (generated once, reused on every start so that
-- messages published while it is down wait for it).
CREATE TABLE settings (
  key        TEXT PRIMARY KEY,
  value      TEXT    NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
