-- V004__index_users_deleted_at.sql
-- Description: Index users.deleted_at
-- Rollback: U004__index_users_deleted_at.sql

-- `users` is live: build the index without blocking writes. CONCURRENTLY
-- cannot run in a transaction, so silo runs this file outside one; keeping
-- it alone in its file keeps every other migration all-or-nothing.
CREATE INDEX CONCURRENTLY idx_users_deleted_at ON users (deleted_at);
