-- Storage credentials, storage configurations, API tokens and the store's own facts.
-- Times are Unix milliseconds (UTC); ids are UUIDs as text.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE storage_credentials (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('aws-user', 'aws-role')),
    access_key_id TEXT,
    role_arn      TEXT,
    sealed_secret BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK ((kind = 'aws-user') = (access_key_id IS NOT NULL)),
    CHECK ((kind = 'aws-role') = (role_arn IS NOT NULL))
) STRICT;

CREATE TABLE storage_configurations (
    id                 TEXT PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL UNIQUE,
    region             TEXT NOT NULL,
    bucket             TEXT NOT NULL,
    key_prefix         TEXT,
    credential_id      TEXT NOT NULL REFERENCES storage_credentials (id) ON DELETE RESTRICT,
    sse_algorithm      TEXT CHECK (sse_algorithm IN ('AES256', 'aws:kms')),
    sse_kms_key_arn    TEXT,
    default_for_region INTEGER NOT NULL CHECK (default_for_region IN (0, 1)),
    status             TEXT NOT NULL CHECK (status IN ('initializing', 'ready', 'error')),
    versioning         TEXT CHECK (versioning IN ('unversioned', 'enabled', 'suspended')),
    validation         TEXT,
    error_code         TEXT,
    error_message      TEXT,
    last_verified_at   INTEGER,
    last_used_at       INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX storage_configurations_one_default_per_region
    ON storage_configurations (region) WHERE default_for_region = 1;
CREATE INDEX storage_configurations_by_credential ON storage_configurations (credential_id);
CREATE INDEX storage_configurations_by_bucket ON storage_configurations (bucket);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    projects     TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
