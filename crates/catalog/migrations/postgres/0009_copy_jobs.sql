-- Copy and move jobs between projects. A job plans before it copies: its listing of the
-- sources goes into job_objects a page at a time (one row per object, in the listing's order,
-- with the version it pins), and the job keeps where the listing stopped (`plan`, JSON), so a
-- plan taken up again neither loses nor repeats an object. Each object's result is recorded in
-- the transaction that records the job's progress: a job taken up after a crash copies only
-- what is still pending, and its report lists every object. `preflight` holds the checks
-- that ran before any byte moved (JSON, a validation report).

ALTER TABLE jobs ADD COLUMN plan TEXT;
ALTER TABLE jobs ADD COLUMN preflight TEXT;

CREATE TABLE job_objects (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    -- Keys relative to the source and destination projects' folders.
    source_key      TEXT NOT NULL,
    version_id      TEXT,
    size            BIGINT NOT NULL,
    etag            TEXT NOT NULL,
    destination_key TEXT NOT NULL,
    -- pending, planned (a dry run's), copied, moved, skipped or failed.
    result          TEXT NOT NULL,
    error           TEXT,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX job_objects_by_result ON job_objects (job_id, result, seq);
