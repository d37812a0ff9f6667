-- The journal: every accepted bus message, once, in one total order.
-- The order is (time_us, key); key is the message id without its leading
-- "YYYY-", so the same message arriving with and without the year is one row.
CREATE TABLE journal (
  seq      INTEGER PRIMARY KEY,      -- arrival order, for diagnostics only
  time_us  INTEGER NOT NULL,         -- message time, microseconds since the Unix epoch
  key      TEXT    NOT NULL,         -- dedupe key
  id       TEXT    NOT NULL,         -- the id as the source sent it
  topic    TEXT    NOT NULL,
  raw      BLOB    NOT NULL,         -- the record exactly as received
  late     INTEGER NOT NULL DEFAULT 0 -- 1 when it arrived behind a model's cursor
);
CREATE UNIQUE INDEX journal_key ON journal (key);
CREATE UNIQUE INDEX journal_order ON journal (time_us, key);

-- One row per model ident: its declaration and its cursor into the journal.
CREATE TABLE models (
  ident          TEXT PRIMARY KEY,
  spec           TEXT    NOT NULL,   -- JSON of engine.ModelSpec
  table_name     TEXT    NOT NULL,
  fingerprint    TEXT    NOT NULL,
  cursor_time_us INTEGER NOT NULL DEFAULT 0,
  cursor_key     TEXT    NOT NULL DEFAULT '',
  cursor_id      TEXT    NOT NULL DEFAULT '',
  processed      INTEGER NOT NULL DEFAULT 0,
  errors         INTEGER NOT NULL DEFAULT 0,
  status         TEXT    NOT NULL DEFAULT 'ok',
  status_reason  TEXT    NOT NULL DEFAULT '',
  updated_at     INTEGER NOT NULL DEFAULT 0
);

-- Durable running values of each model (the Lua "state" module).
CREATE TABLE model_state (
  ident TEXT NOT NULL,
  key   TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (ident, key)
) WITHOUT ROWID;

-- Errors raised by a model's process function, one per failed message.
CREATE TABLE model_errors (
  id        INTEGER PRIMARY KEY,
  ident     TEXT    NOT NULL,
  msg_id    TEXT    NOT NULL,
  time_us   INTEGER NOT NULL,
  error     TEXT    NOT NULL,
  traceback TEXT    NOT NULL,
  at        INTEGER NOT NULL
);
CREATE INDEX model_errors_ident ON model_errors (ident, id);

-- Records that could not be accepted, with the reason, so that nothing
-- disappears without a trace.
CREATE TABLE rejects (
  id     INTEGER PRIMARY KEY,
  source TEXT    NOT NULL,
  reason TEXT    NOT NULL,
  record BLOB    NOT NULL,           -- at most the first 64 KiB
  at     INTEGER NOT NULL
);
