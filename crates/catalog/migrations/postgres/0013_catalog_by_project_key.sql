-- The catalog's two big tables name their project by a small integer key instead of its id:
-- the id's 36 characters were in every row and every index entry, a quarter of a file's bytes.
-- Keys are never reused. The rows are copied into the new tables as they are.
--
-- Folders get an index of their own (partial: folders only), so that the first page of a
-- folder, which lists its folders first, finds them without walking the folder's files.

ALTER TABLE projects ADD COLUMN key BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE projects ADD CONSTRAINT projects_key UNIQUE (key);

ALTER TABLE objects RENAME TO objects_by_id;
ALTER TABLE objects_by_id RENAME CONSTRAINT objects_pkey TO objects_by_id_pkey;
CREATE TABLE objects (
    project  BIGINT NOT NULL REFERENCES projects (key) ON DELETE CASCADE,
    key      TEXT COLLATE "C" NOT NULL,
    state    TEXT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (project, key)
);
INSERT INTO objects (project, key, state, revision)
    SELECT p.key, o.key, o.state, o.revision FROM objects_by_id o JOIN projects p ON p.id = o.project_id;
DROP TABLE objects_by_id;

ALTER TABLE entries RENAME TO entries_by_id;
ALTER TABLE entries_by_id RENAME CONSTRAINT entries_pkey TO entries_by_id_pkey;
CREATE TABLE entries (
    project         BIGINT NOT NULL REFERENCES projects (key) ON DELETE CASCADE,
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
    PRIMARY KEY (project, parent, name)
);
INSERT INTO entries (project, parent, name, kind, size, etag, last_modified, storage_class, version_id, archive,
                     children, marker)
    SELECT p.key, e.parent, e.name, e.kind, e.size, e.etag, e.last_modified, e.storage_class, e.version_id,
           e.archive, e.children, e.marker
    FROM entries_by_id e JOIN projects p ON p.id = e.project_id;
DROP TABLE entries_by_id;
CREATE INDEX entries_folders ON entries (project, parent, name) WHERE kind = 'folder';
