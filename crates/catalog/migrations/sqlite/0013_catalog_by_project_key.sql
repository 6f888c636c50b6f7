-- The catalog's two big tables name their project by a small integer key instead of its id:
-- the id's 36 characters were in every row and every index entry, a quarter of a file's bytes.
-- A new project takes the key after the greatest (a trigger: SQLite cannot add a column that
-- fills itself); the key of the newest project may come back once it is deleted, with its rows.
-- The rows are copied into the new tables as they are.
--
-- Folders get an index of their own (partial: folders only), so that the first page of a
-- folder, which lists its folders first, finds them without walking the folder's files.

ALTER TABLE projects ADD COLUMN key INTEGER;
UPDATE projects SET key = rowid;
CREATE UNIQUE INDEX projects_key ON projects (key);
CREATE TRIGGER projects_next_key AFTER INSERT ON projects WHEN NEW.key IS NULL
BEGIN
    UPDATE projects SET key = (SELECT COALESCE(MAX(key), 0) + 1 FROM projects) WHERE id = NEW.id;
END;

CREATE TABLE objects_by_key (
    project  INTEGER NOT NULL REFERENCES projects (key) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    state    TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (project, key)
) STRICT, WITHOUT ROWID;
INSERT INTO objects_by_key (project, key, state, revision)
    SELECT p.key, o.key, o.state, o.revision FROM objects o JOIN projects p ON p.id = o.project_id;
DROP TABLE objects;
ALTER TABLE objects_by_key RENAME TO objects;

CREATE TABLE entries_by_key (
    project         INTEGER NOT NULL REFERENCES projects (key) ON DELETE CASCADE,
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
INSERT INTO entries_by_key (project, parent, name, kind, size, etag, last_modified, storage_class, version_id,
                            archive, children, marker)
    SELECT p.key, e.parent, e.name, e.kind, e.size, e.etag, e.last_modified, e.storage_class, e.version_id,
           e.archive, e.children, e.marker
    FROM entries e JOIN projects p ON p.id = e.project_id;
DROP TABLE entries;
ALTER TABLE entries_by_key RENAME TO entries;
CREATE INDEX entries_folders ON entries (project, parent, name) WHERE kind = 'folder';
