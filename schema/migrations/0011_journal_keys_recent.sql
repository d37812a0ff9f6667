-- The hashes of the newest journaled keys, merged into journal_keys in
-- hash order once there are many (sqlstore's newKeys). journal_keys is keyed
-- by a hash, so a batch of new keys lands at random all over it: over a
-- million messages every append wrote most of its pages again. Keys land
-- here instead, in a table small enough that a batch writes few pages, and
-- a merge writes each page of journal_keys once. A hash is in one of the
-- two tables, never both; dedupe looks in both.
CREATE TABLE journal_keys_recent (
  h       INTEGER PRIMARY KEY,       -- the key's hash
  time_us INTEGER NOT NULL           -- the time of the first key journaled with this hash
);
