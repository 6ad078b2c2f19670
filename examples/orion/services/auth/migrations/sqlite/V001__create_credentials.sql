-- V001__create_credentials.sql
-- Description: Create credentials, each user's login name and password hash
-- Rollback: U001__create_credentials.sql

-- SQLite version of ../postgres/V001__create_credentials.sql: UUID -> TEXT;
-- TIMESTAMPTZ -> TEXT (ISO-8601, UTC); DEFAULT NOW() -> DEFAULT
-- CURRENT_TIMESTAMP. Primary key columns say NOT NULL: unlike PostgreSQL,
-- SQLite lets a primary key other than INTEGER PRIMARY KEY hold NULL.

CREATE TABLE credentials (
  id TEXT NOT NULL PRIMARY KEY,   -- UUID
  user_id TEXT NOT NULL,          -- users service id: no foreign key
  email TEXT NOT NULL,            -- login name, denormalized from user events
  password_hash TEXT NOT NULL,    -- a slow hash (argon2id, bcrypt), never the password
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- One credential per user, one user per login email.
CREATE UNIQUE INDEX idx_credentials_user_id ON credentials (user_id);
CREATE UNIQUE INDEX idx_credentials_email ON credentials (email);
