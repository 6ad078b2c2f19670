-- V003__add_users_deleted_at.sql
-- Description: Add users.deleted_at for soft deletes (seed 002, pattern 3)
-- Rollback: U003__add_users_deleted_at.sql

-- Give up rather than queue every query on `users` behind this lock.
SET LOCAL lock_timeout = '2s';
SET LOCAL statement_timeout = '1min';

-- The review's recommendation: mark users deleted instead of deleting them.
-- Nullable, so existing rows need no backfill: a non-breaking change.
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMPTZ;
