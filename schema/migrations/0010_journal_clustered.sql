-- The journal stored in its own order. Before, each row carried a rowid and
-- two unique indexes (on the text key, and on (time_us, key)), so every
-- append wrote three B-trees, one of them (the key index) at a random
-- place that outgrows the page cache as the journal grows: the cost per
-- message tripled between 100,000 and 1,000,000 messages.
--
-- Now the journal is one B-tree clustered on its order (time_us, key), so
-- appends in time order touch its right edge and scans read it in order.
-- Dedupe goes through journal_keys: a 64-bit hash of the key (the first 8
-- bytes of its SHA-256) and where that key's row is, a few bytes a message
-- instead of a text index entry. Two keys with the same hash are told
-- apart by looking up the row (time_us, key): a key whose hash is taken by
-- another key is kept in journal_collisions, which a SHA-256 prefix keeps
-- empty in practice. raw holds the record compressed (S2, with a
-- dictionary of journal_dicts: see sqlstore's rawcodec.go), marked by a
-- first byte 0; a record that does not shrink is stored as received.
CREATE TABLE journal_next (
  time_us  INTEGER NOT NULL,         -- message time, microseconds since the Unix epoch
  key      TEXT    NOT NULL,         -- dedupe key: the message id without a leading "YYYY-"
  id       TEXT    NOT NULL,         -- the id as the source sent it
  topic    TEXT    NOT NULL,
  raw      BLOB    NOT NULL,         -- the record, compressed or as received
  late     INTEGER NOT NULL DEFAULT 0, -- 1 when it arrived behind a model's cursor
  PRIMARY KEY (time_us, key)
) WITHOUT ROWID;
CREATE TABLE journal_keys (
  h       INTEGER PRIMARY KEY,       -- the key's hash
  time_us INTEGER NOT NULL           -- the time of the first key journaled with this hash
);
CREATE TABLE journal_collisions (
  key TEXT PRIMARY KEY               -- journaled keys whose hash an earlier key has
) WITHOUT ROWID;
CREATE TABLE journal_dicts (
  id   INTEGER PRIMARY KEY,          -- the dictionary id a compressed record names
  dict BLOB    NOT NULL              -- raw content: records of the first messages
);
-- The rows are copied, compressed and hashed by sqlstore's migration
-- fix-up (SQL has neither S2 nor SHA-256), which then replaces journal
-- with journal_next.
