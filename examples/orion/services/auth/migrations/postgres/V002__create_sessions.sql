-- V002__create_sessions.sql
-- Description: Create sessions, the logins each user holds open
-- Rollback: U002__create_sessions.sql

-- The new table's foreign key takes a SHARE ROW EXCLUSIVE lock on the
-- table it references: give up rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

CREATE TABLE sessions (
  id UUID PRIMARY KEY,
  credential_id UUID NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,  -- same database: a real foreign key
  user_id UUID NOT NULL,          -- users service id, copied from credentials: no foreign key
  token_hash TEXT NOT NULL,       -- hash of the session token, never the token itself
  user_agent TEXT,
  expires_at TIMESTAMPTZ NOT NULL,
  revoked_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_sessions_credential_id ON sessions (credential_id);
CREATE INDEX idx_sessions_user_id ON sessions (user_id);
CREATE UNIQUE INDEX idx_sessions_token_hash ON sessions (token_hash);
CREATE INDEX idx_sessions_expires_at ON sessions (expires_at);  -- purging expired sessions
