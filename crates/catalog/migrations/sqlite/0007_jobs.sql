-- Jobs: long operations on a project's data (a folder's delete, a folder's move; copies next),
-- run by the workers under a lease `job:{id}`, so that they survive a restart: a replica that
-- dies leaves its job `running`, and the next holder of the lease takes it up where the bucket
-- shows it stopped. A project's delete takes its jobs with it.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL,
    project_id       TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- What to do, as JSON (`JobSpec`).
    spec             TEXT NOT NULL,
    status           TEXT NOT NULL,
    objects_total    INTEGER,
    objects_done     INTEGER NOT NULL,
    objects_skipped  INTEGER NOT NULL,
    objects_failed   INTEGER NOT NULL,
    bytes_total      INTEGER,
    bytes_done       INTEGER NOT NULL,
    error_code       TEXT,
    error_message    TEXT,
    cancel_requested INTEGER NOT NULL CHECK (cancel_requested IN (0, 1)),
    created_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
) STRICT;
CREATE INDEX jobs_by_project ON jobs (project_id, created_at);
CREATE INDEX jobs_by_status ON jobs (status, created_at);
