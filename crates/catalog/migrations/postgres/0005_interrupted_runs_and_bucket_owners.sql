-- Reconcile runs that stopped without finishing (a shutdown, a lost lease, a crash found by the
-- next holder of the project's lease) end `interrupted`; and each configuration records the AWS
-- account that owns its bucket, learned at validation, for the queue policy's
-- `aws:SourceAccount` condition.

ALTER TABLE reconciles DROP CONSTRAINT reconciles_status_check;
ALTER TABLE reconciles ADD CONSTRAINT reconciles_status_check
    CHECK (status IN ('running', 'finished', 'failed', 'interrupted'));

ALTER TABLE storage_configurations ADD COLUMN bucket_account TEXT;
