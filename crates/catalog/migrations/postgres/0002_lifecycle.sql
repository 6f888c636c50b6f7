-- When each configuration is next validated, how many validations in a row failed, and the
-- leases that let exactly one replica run a piece of periodic work.

ALTER TABLE storage_configurations ADD COLUMN next_check_at BIGINT;
ALTER TABLE storage_configurations ADD COLUMN check_failures BIGINT NOT NULL DEFAULT 0;
CREATE INDEX storage_configurations_due ON storage_configurations (next_check_at);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
