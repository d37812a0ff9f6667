-- Which spans of time the journal holds completely: every message the
-- archive has for the span is journaled. A span is recorded by the
-- transaction that journals the archive's messages for it, so after a
-- crash exactly the spans that were not filled are filled again. Spans are
-- kept merged: disjoint, not touching, half open [start_us, end_us).
CREATE TABLE fill_spans (
  start_us INTEGER PRIMARY KEY,
  end_us   INTEGER NOT NULL
);

