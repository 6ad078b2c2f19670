-- V004__index_users_deleted_at.sql
-- Description: Index users.deleted_at
-- Rollback: U004__index_users_deleted_at.sql

-- SQLite version of ../postgres/V004__index_users_deleted_at.sql (SQLite
-- has no CONCURRENTLY: a store serves one service and locks the file).
CREATE INDEX idx_users_deleted_at ON users (deleted_at);
