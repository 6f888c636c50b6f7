-- Console sessions: a browser signed in with a token. The cookie's value is never stored, only
-- its hash; the CSRF token is sent back by the console's script on every change it asks for.
-- A session ends at sign-out, when it expires, or with its token.

CREATE TABLE console_sessions (
    session_hash TEXT PRIMARY KEY NOT NULL,
    token_id     TEXT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
CREATE INDEX console_sessions_by_token ON console_sessions (token_id);
