-- Keys and names sort byte by byte (COLLATE "C"), as in SQLite and S3 listings, so keyset
-- pagination and the reconcile's merge see one order, and projects list by name in the same
-- order on both databases.
--
-- Projects and the catalog of their data: each key's state (versions, delete markers,
-- tombstones) as the sync engine applies events to it, the visible tree that browsing reads
-- (files and folders, folders counting their children), reconcile runs and dead letters.

CREATE TABLE projects (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT COLLATE "C" NOT NULL UNIQUE,
    region           TEXT NOT NULL,
    configuration_id TEXT NOT NULL REFERENCES storage_configurations (id) ON DELETE RESTRICT,
    folder           TEXT NOT NULL,
    bucket           TEXT NOT NULL,
    key_prefix       TEXT NOT NULL,
    -- Bumped by every committed change to the project's catalog; reconcile fences on it.
    revision         BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX projects_by_bucket ON projects (bucket);
CREATE INDEX projects_by_configuration ON projects (configuration_id);

-- One row per key ever seen under the project's prefix (keys relative to it), while it has a
-- version or a tombstone that late events must respect.
CREATE TABLE objects (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key        TEXT COLLATE "C" NOT NULL,
    state      TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    PRIMARY KEY (project_id, key)
);

-- The visible tree: a file per visible key, a folder per path that holds anything or has a
-- folder marker object. Folder names end with '/'.
CREATE TABLE entries (
    project_id      TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    parent          TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('file', 'folder')),
    size            BIGINT,
    etag            TEXT,
    last_modified   BIGINT,
    storage_class   TEXT,
    version_id      TEXT,
    archive         TEXT,
    children        BIGINT NOT NULL DEFAULT 0,
    marker          BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (project_id, parent, name)
);

CREATE TABLE reconciles (
    id          TEXT PRIMARY KEY NOT NULL,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    reason      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    fence       BIGINT NOT NULL,
    listed      BIGINT NOT NULL DEFAULT 0,
    added       BIGINT NOT NULL DEFAULT 0,
    removed     BIGINT NOT NULL DEFAULT 0,
    changed     BIGINT NOT NULL DEFAULT 0,
    samples     TEXT NOT NULL,
    error       TEXT,
    started_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX reconciles_by_project ON reconciles (project_id, started_at);

CREATE TABLE dead_letters (
    id          TEXT PRIMARY KEY NOT NULL,
    queue       TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    body        TEXT NOT NULL,
    error       TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
