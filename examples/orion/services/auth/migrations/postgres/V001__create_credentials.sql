-- V001__create_credentials.sql
-- Description: Create credentials, each user's login name and password hash
-- Rollback: U001__create_credentials.sql

-- user_id is the users service's id for this person. That row lives in
-- another database (orion_user), so here it is a plain column with an index:
-- no foreign key across databases (seed 002, "No Cross-Database Foreign
-- Keys"). The auth service learns of users from user.created and keeps the
-- login email current from user.updated.
CREATE TABLE credentials (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL,          -- users service id: no foreign key
  email TEXT NOT NULL,            -- login name, denormalized from user events
  password_hash TEXT NOT NULL,    -- a slow hash (argon2id, bcrypt), never the password
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- One credential per user, one user per login email.
CREATE UNIQUE INDEX idx_credentials_user_id ON credentials (user_id);
CREATE UNIQUE INDEX idx_credentials_email ON credentials (email);
