-- V001__create_samples.sql
-- Description: Create metric samples
-- Rollback: U001__create_samples.sql

-- SQLite version of ../postgres/V001__create_samples.sql: identity -> INTEGER
-- PRIMARY KEY (the rowid), TIMESTAMPTZ -> TEXT (ISO-8601, UTC), BOOLEAN ->
-- 0/1.

-- labels is a JSON object as text, so both engines store it the same way.
CREATE TABLE samples (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  value REAL NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}',
  recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_samples_name_recorded_at ON samples (name, recorded_at);
