-- Uploads a client has started and not yet completed or aborted: a single presigned PUT, or an
-- S3 multipart upload (its UploadId). The server aborts those nobody completes once they
-- expire, and a project's delete takes its uploads with it.

CREATE TABLE uploads (
    id           TEXT PRIMARY KEY NOT NULL,
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    multipart_id TEXT,
    size         BIGINT NOT NULL,
    part_size    BIGINT NOT NULL,
    part_count   BIGINT NOT NULL,
    content_type TEXT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX uploads_by_project ON uploads (project_id, created_at);
CREATE INDEX uploads_by_expiry ON uploads (expires_at);
