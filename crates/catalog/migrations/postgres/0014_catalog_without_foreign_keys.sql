-- The catalog's two big tables lose their foreign key to projects. Its check locks the
-- project's row for every row written, and cost as much as the write it guarded (a COPY of
-- 200,000 entries: 745 ms with it, 356 ms without); more once the row, which every batch
-- changes (its revision), has old versions to walk (1,164 ms).
--
-- The store keeps the rule itself: a batch writes a project's rows only after taking its next
-- revision, which locks the project's row until the batch commits, and deleting a project
-- deletes its rows in the same transaction.

ALTER TABLE objects DROP CONSTRAINT objects_project_fkey;
ALTER TABLE entries DROP CONSTRAINT entries_project_fkey;
