-- V001__create_battle_documents.sql
-- Description: search documents for battles, indexed from battle.created
-- Rollback: U001__create_battle_documents.sql

-- The seed keeps these in Typesense; here they are plain tables the
-- search service fills from events.
CREATE TABLE battle_documents (
  id TEXT PRIMARY KEY,
  system_name TEXT NOT NULL,
  security_type TEXT NOT NULL,
  start_time INTEGER NOT NULL,
  total_kills INT NOT NULL,
  total_isk_destroyed INTEGER NOT NULL,
  alliance_names TEXT,     -- JSON array, faceted
  participant_names TEXT
);

CREATE INDEX idx_battle_documents_system_name ON battle_documents (system_name);
CREATE INDEX idx_battle_documents_start_time ON battle_documents (start_time);
