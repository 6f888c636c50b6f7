-- The S3 Inventory report a reconcile started from (its manifest's key), instead of a listing
-- of the prefix; NULL for a run that listed.

ALTER TABLE reconciles ADD COLUMN baseline TEXT;
