-- V002__create_sessions.sql
-- Description: active sessions
-- Rollback: U002__create_sessions.sql

CREATE TABLE sessions (
  id UUID PRIMARY KEY,
  credential_id UUID NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
  user_id UUID NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_sessions_credential_id ON sessions (credential_id);
CREATE INDEX idx_sessions_user_id ON sessions (user_id);
CREATE INDEX idx_sessions_expires_at ON sessions (expires_at);
