-- Reconcile runs that stopped without finishing (a shutdown, a lost lease, a crash found by the
-- next holder of the project's lease) end `interrupted`; and each configuration records the AWS
-- account that owns its bucket, learned at validation, for the queue policy's
-- `aws:SourceAccount` condition.
--
-- SQLite cannot change a CHECK constraint in place: the table is copied into a new one.

CREATE TABLE reconciles_new (
    id          TEXT PRIMARY KEY NOT NULL,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    reason      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
    fence       INTEGER NOT NULL,
    listed      INTEGER NOT NULL DEFAULT 0,
    added       INTEGER NOT NULL DEFAULT 0,
    removed     INTEGER NOT NULL DEFAULT 0,
    changed     INTEGER NOT NULL DEFAULT 0,
    samples     TEXT NOT NULL,
    error       TEXT,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER
) STRICT;
INSERT INTO reconciles_new SELECT * FROM reconciles;
DROP TABLE reconciles;
ALTER TABLE reconciles_new RENAME TO reconciles;
CREATE INDEX reconciles_by_project ON reconciles (project_id, started_at);

ALTER TABLE storage_configurations ADD COLUMN bucket_account TEXT;
