-- Which spans of time the journal holds completely: every message the
-- archive has for the span is journaled. A span is recorded by the
-- transaction that journals the archive's messages for it, so after a
-- crash exactly the spans that were not filled are filled again. Spans are
-- kept merged: disjoint, not touching, half open [start_us, end_us).
CREATE TABLE fill_spans (
  start_us INTEGER PRIMARY KEY,
  end_us   INTEGER NOT NULL
);

-- Facts the daemon fixes at its first start and keeps, such as where the
-- history of new models starts when --epoch is not given (one hour before
-- the first start, whichever start a crash makes the next one).
CREATE TABLE daemon_facts (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
