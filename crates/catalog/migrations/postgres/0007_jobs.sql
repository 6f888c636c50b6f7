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
    objects_total    BIGINT,
    objects_done     BIGINT NOT NULL,
    objects_skipped  BIGINT NOT NULL,
    objects_failed   BIGINT NOT NULL,
    bytes_total      BIGINT,
    bytes_done       BIGINT NOT NULL,
    error_code       TEXT,
    error_message    TEXT,
    cancel_requested BOOLEAN NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX jobs_by_project ON jobs (project_id, created_at);
CREATE INDEX jobs_by_status ON jobs (status, created_at);
