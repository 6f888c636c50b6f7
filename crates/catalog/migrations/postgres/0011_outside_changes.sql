-- Keys that changed while no project held them: their events reached the queue but no project.
-- A reconcile that starts from an S3 Inventory report looks again at the keys of its prefix
-- that changed after the report, since the project's own events began only when it was made.
-- One row per key, with the time of its latest change; rows leave once older than any report
-- still used. Keys sort byte by byte, as S3 lists them.

CREATE TABLE outside_changes (
    bucket TEXT NOT NULL,
    key    TEXT COLLATE "C" NOT NULL,
    at     BIGINT NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE INDEX outside_changes_by_time ON outside_changes (at);
