-- V002__create_sessions.sql
-- Description: Create sessions, the logins each user holds open
-- Rollback: U002__create_sessions.sql

-- SQLite version of ../postgres/V002__create_sessions.sql: UUID -> TEXT;
-- TIMESTAMPTZ -> TEXT (ISO-8601, UTC); DEFAULT NOW() -> DEFAULT
-- CURRENT_TIMESTAMP. Primary key columns say NOT NULL: unlike PostgreSQL,
-- SQLite lets a primary key other than INTEGER PRIMARY KEY hold NULL.

CREATE TABLE sessions (
  id TEXT NOT NULL PRIMARY KEY,   -- UUID
  credential_id TEXT NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,  -- same database: a real foreign key
  user_id TEXT NOT NULL,          -- users service id, copied from credentials: no foreign key
  token_hash TEXT NOT NULL,       -- hash of the session token, never the token itself
  user_agent TEXT,
  expires_at TEXT NOT NULL,
  revoked_at TEXT,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_sessions_credential_id ON sessions (credential_id);
CREATE INDEX idx_sessions_user_id ON sessions (user_id);
CREATE UNIQUE INDEX idx_sessions_token_hash ON sessions (token_hash);
CREATE INDEX idx_sessions_expires_at ON sessions (expires_at);  -- purging expired sessions
