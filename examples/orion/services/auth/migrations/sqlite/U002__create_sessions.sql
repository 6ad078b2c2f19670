-- U002__create_sessions.sql
-- Description: undo V002: create sessions, the logins each user holds open

DROP INDEX idx_sessions_expires_at;
DROP INDEX idx_sessions_token_hash;
DROP INDEX idx_sessions_user_id;
DROP INDEX idx_sessions_credential_id;
DROP TABLE sessions;
