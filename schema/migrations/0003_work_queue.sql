-- Work queues: the items a model pushed for its workers and whose outcome
-- it has not committed yet. An item is inserted by the transaction that
-- commits the batch that pushed it and deleted by the one that commits the
-- effect of its outcome, so a crash neither loses nor repeats it.
CREATE TABLE model_queue (
  ident TEXT    NOT NULL,
  seq   INTEGER NOT NULL,              -- push order within the model
  item  TEXT    NOT NULL,              -- JSON
  PRIMARY KEY (ident, seq)
) WITHOUT ROWID;

-- The last seq each model pushed, so seqs keep growing once the queue is
-- empty.
ALTER TABLE models ADD COLUMN queue_seq INTEGER NOT NULL DEFAULT 0;
