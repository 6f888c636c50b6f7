-- The audit log: one row per state-changing call of the API, append-only (rows leave only when
-- older than the retention). The actor is the token as it was named then: a token deleted
-- later still shows who it was. `status` is the HTTP status of the answer; `detail` is JSON
-- the call chose to add (a vended credential's access and expiry, say), never a secret.

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY NOT NULL,
    at          BIGINT NOT NULL,
    actor_token TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    status      BIGINT NOT NULL,
    source_ip   TEXT,
    user_agent  TEXT,
    request_id  TEXT NOT NULL,
    detail      TEXT
);
-- Pages come newest first, by (at, id); filters by actor or action walk their own index.
CREATE INDEX audit_events_by_time ON audit_events (at, id);
CREATE INDEX audit_events_by_actor ON audit_events (actor_token, at, id);
CREATE INDEX audit_events_by_action ON audit_events (action, at, id);
