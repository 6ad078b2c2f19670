-- V001__create_credentials.sql
-- Description: login credentials; user_id is the users service id, no foreign key
-- Rollback: U001__create_credentials.sql

CREATE TABLE credentials (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL,            -- users service id; synchronized by events
  email TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_credentials_user_id ON credentials (user_id);
