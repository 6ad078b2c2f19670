-- V003__add_users_deleted_at.sql
-- Description: Add users.deleted_at for soft deletes (seed 002, pattern 3)
-- Rollback: U003__add_users_deleted_at.sql

-- SQLite version of ../postgres/V003__add_users_deleted_at.sql:
-- TIMESTAMPTZ -> TEXT (ISO-8601, UTC).

ALTER TABLE users ADD COLUMN deleted_at TEXT;
