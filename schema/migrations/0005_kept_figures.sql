-- Figures that /status and the API read on every request, kept current by
-- the transactions that change what they count (journal appends, model
-- commits, rejects), so that reading them costs the same over ten journaled
-- messages as over a billion. Counting them on each request (count(*),
-- min()/max() over the journal) grew with the journal.

-- The journal's size and span; one row, written by every Append.
CREATE TABLE journal_stats (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  messages   INTEGER NOT NULL,
  late       INTEGER NOT NULL,
  rejects    INTEGER NOT NULL,       -- distinct rejected records ever kept (all sources)
  oldest_us  INTEGER,                -- the first message in journal order (NULL: empty)
  oldest_key TEXT,
  newest_us  INTEGER,                -- the last one
  newest_key TEXT
);
INSERT INTO journal_stats (id, messages, late, rejects, oldest_us, oldest_key, newest_us, newest_key) VALUES (1,
  (SELECT count(*) FROM journal),
  (SELECT coalesce(sum(late), 0) FROM journal),
  0, -- set with the reject totals below
  (SELECT time_us FROM journal ORDER BY time_us, key LIMIT 1),
  (SELECT key FROM journal ORDER BY time_us, key LIMIT 1),
  (SELECT time_us FROM journal ORDER BY time_us DESC, key DESC LIMIT 1),
  (SELECT key FROM journal ORDER BY time_us DESC, key DESC LIMIT 1));

-- Rows of each model table, by table name, kept by triggers on the table
-- (an upsert that updates a row fires no insert trigger), so the API's
-- row count needs no count(*).
CREATE TABLE table_rows (
  name TEXT PRIMARY KEY,
  n    INTEGER NOT NULL
) WITHOUT ROWID;

-- Work items each model's last commit left waiting.
ALTER TABLE models ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
UPDATE models SET queued = (SELECT count(*) FROM model_queue q WHERE q.ident = models.ident);

-- model_errors keeps the newest N errors of each model (models.errors is
-- the exact running total), pruned through its (ident, id) index.

-- rejects keeps the newest N records of each origin (a file, the bus, the
-- archive). A record's identity (its source, or only its origin for the
-- bus and the archive, plus a hash of the record) is kept for good in
-- reject_seen, 16 bytes each, so that a record seen again (the same file
-- replayed, an archive window fetched twice) is neither kept nor counted
-- again, even after its row was pruned.
ALTER TABLE rejects ADD COLUMN origin TEXT NOT NULL DEFAULT '';
CREATE INDEX rejects_origin ON rejects (origin, id);
CREATE TABLE reject_seen (
  key BLOB PRIMARY KEY
) WITHOUT ROWID;
-- Distinct rejected records per origin, ever; exact whatever was pruned.
CREATE TABLE reject_totals (
  origin TEXT PRIMARY KEY,
  total  INTEGER NOT NULL
) WITHOUT ROWID;
-- Existing rejects get their origin, identity and totals from Go (see
-- sqlstore's migration fix-ups): SQL has no hash function.
