-- Tokens may expire: the time (Unix milliseconds) from which a token is refused; NULL for a
-- token that never expires, as every token made before this migration.
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
