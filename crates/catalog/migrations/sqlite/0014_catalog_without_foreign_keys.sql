-- The catalog's two big tables lose their foreign key to projects, as on PostgreSQL, where its
-- check cost as much as the write it guarded. The store keeps the rule itself: a batch
-- writes a project's rows only after taking its next revision, which locks the project's row
-- (the database, on SQLite) until the batch commits, and deleting a project deletes its rows in
-- the same transaction. SQLite cannot drop a constraint: the tables are rebuilt and their rows
-- copied as they are.

CREATE TABLE objects_unchecked (
    project  INTEGER NOT NULL,
    key      TEXT NOT NULL,
    state    TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (project, key)
) STRICT, WITHOUT ROWID;
INSERT INTO objects_unchecked (project, key, state, revision) SELECT project, key, state, revision FROM objects;
DROP TABLE objects;
ALTER TABLE objects_unchecked RENAME TO objects;

CREATE TABLE entries_unchecked (
    project         INTEGER NOT NULL,
    parent          TEXT NOT NULL,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('file', 'folder')),
    size            INTEGER,
    etag            TEXT,
    last_modified   INTEGER,
    storage_class   TEXT,
    version_id      TEXT,
    archive         TEXT,
    children        INTEGER NOT NULL DEFAULT 0,
    marker          INTEGER NOT NULL DEFAULT 0 CHECK (marker IN (0, 1)),
    PRIMARY KEY (project, parent, name)
) STRICT, WITHOUT ROWID;
INSERT INTO entries_unchecked (project, parent, name, kind, size, etag, last_modified, storage_class, version_id,
                               archive, children, marker)
    SELECT project, parent, name, kind, size, etag, last_modified, storage_class, version_id, archive, children,
           marker
    FROM entries;
DROP TABLE entries;
ALTER TABLE entries_unchecked RENAME TO entries;
CREATE INDEX entries_folders ON entries (project, parent, name) WHERE kind = 'folder';
