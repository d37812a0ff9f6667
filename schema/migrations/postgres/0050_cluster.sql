-- Several statscache instances sharing this database (engine/cluster):
-- their heartbeats, the leases of the models and of the archive fill,
-- the reload generation, and a log of which instance committed which part
-- of the journal for each model. Times are the database's clock, so the
-- instances' clocks need not agree on expiry.

-- One row per instance, live while expires_at is ahead.
CREATE TABLE cluster_instances (
  id           TEXT COLLATE "C" PRIMARY KEY,
  addr         TEXT   NOT NULL DEFAULT '',
  started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  beat_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at   TIMESTAMPTZ NOT NULL,
  -- The time (unix µs) up to which the instance has journaled everything
  -- it will journal; NULL before it says.
  watermark_us BIGINT,
  -- Lease key of each model it has loaded -> its version (code, table).
  models       JSONB  NOT NULL DEFAULT '{}',
  refused      BIGINT NOT NULL DEFAULT 0
);

-- One lease per model (its ident, or the model a rebuild replaces) and
-- one for the archive fill ('#fill'). token rises at every takeover; a
-- commit checks holder and token in its own transaction.
CREATE TABLE cluster_leases (
  key         TEXT COLLATE "C" PRIMARY KEY,
  holder      TEXT NOT NULL DEFAULT '',
  token       BIGINT NOT NULL DEFAULT 0,
  expires_at  TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
  acquired_at TIMESTAMPTZ
);

-- Every fenced commit: which instance, with which token, committed which
-- span of the journal (from, to] for a model. Pruned after a day.
CREATE TABLE cluster_commits (
  id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ident    TEXT COLLATE "C" NOT NULL,
  holder   TEXT NOT NULL,
  token    BIGINT NOT NULL,
  from_us  BIGINT NOT NULL,
  from_key TEXT COLLATE "C" NOT NULL,
  to_us    BIGINT NOT NULL,
  to_key   TEXT COLLATE "C" NOT NULL,
  at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cluster_commits_at ON cluster_commits (at);

-- The reload generation: a reload asked of any instance raises it.
CREATE TABLE cluster_reload (
  id  INTEGER PRIMARY KEY CHECK (id = 1),
  gen BIGINT NOT NULL
);
INSERT INTO cluster_reload (id, gen) VALUES (1, 0);
