-- V003__add_users_deleted_at.sql
-- Description: Add users.deleted_at for soft deletes (seed 002, pattern 3)
-- Rollback: U003__add_users_deleted_at.sql

-- The review's recommendation: mark users deleted instead of deleting them.
-- Nullable, so existing rows need no backfill: a non-breaking change.
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMPTZ;

CREATE INDEX idx_users_deleted_at ON users (deleted_at);
