-- V002__create_journals.sql
-- Description: Create journals and progression
-- Rollback: U002__create_journals.sql

-- SQLite version of ../postgres/V002__create_journals.sql: identity -> INTEGER
-- PRIMARY KEY (the rowid), TIMESTAMPTZ -> TEXT (ISO-8601, UTC), BOOLEAN ->
-- 0/1.

CREATE TABLE journals (
  id INTEGER PRIMARY KEY,
  character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
  entry TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_journals_character_id ON journals (character_id);

CREATE TABLE progressions (
  id INTEGER PRIMARY KEY,
  character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
  experience INTEGER NOT NULL DEFAULT 0,
  milestone TEXT,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_progressions_character_id ON progressions (character_id);
