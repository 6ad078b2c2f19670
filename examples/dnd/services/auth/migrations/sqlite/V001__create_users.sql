-- V001__create_users.sql
-- Description: Create users
-- Rollback: U001__create_users.sql

-- SQLite version of ../postgres/V001__create_users.sql: identity -> INTEGER
-- PRIMARY KEY (the rowid), TIMESTAMPTZ -> TEXT (ISO-8601, UTC), BOOLEAN ->
-- 0/1.

-- password_hash holds an argon2/bcrypt hash made by the auth service, never
-- a password.
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  email TEXT NOT NULL,
  display_name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX idx_users_email ON users (email);
