-- V003__add_users_deleted_at.sql
-- Description: Add users.deleted_at for soft deletes (seed 002, pattern 3)
-- Rollback: U003__add_users_deleted_at.sql

-- SQLite version of ../postgres/V003__add_users_deleted_at.sql: UUID and TIMESTAMPTZ are TEXT (UUIDs as
-- text, times as ISO-8601 UTC), JSONB is JSON text, NOW() is
-- CURRENT_TIMESTAMP. Primary key columns say NOT NULL: unlike PostgreSQL,
-- SQLite lets a primary key that is not INTEGER PRIMARY KEY hold NULL.

ALTER TABLE users ADD COLUMN deleted_at TEXT;

CREATE INDEX idx_users_deleted_at ON users (deleted_at);
