-- Where each model's history starts (its epoch or backlog limit), in
-- microseconds: a message journaled behind a model's cursor is late for
-- it only if it is not before the model's start (archive history filled
-- in for a newer model is not late for the older ones).
ALTER TABLE models ADD COLUMN start_us INTEGER NOT NULL DEFAULT -9223372036854775808;
