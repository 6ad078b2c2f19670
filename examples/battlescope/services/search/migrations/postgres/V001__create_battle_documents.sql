-- V001__create_battle_documents.sql
-- Description: Create battle_documents, the seed's Typesense `battles` collection
-- Rollback: U001__create_battle_documents.sql

-- The seed keeps this collection in Typesense. Here it is a table the search
-- service fills from events, one column per Typesense field: string -> TEXT,
-- int32 -> INT, int64 -> BIGINT, string[] -> TEXT[]. Typesense fields are
-- required unless marked optional, so every column is NOT NULL. Fields the
-- seed marks `facet` or `sort` get an index.

CREATE TABLE battle_documents (
  id TEXT PRIMARY KEY,                  -- the battle's id (from battle.created)
  system_name TEXT NOT NULL,            -- facet
  security_type TEXT NOT NULL,          -- facet
  start_time BIGINT NOT NULL,           -- Unix time; sort
  total_kills BIGINT NOT NULL,             -- sort
  total_isk_destroyed BIGINT NOT NULL,  -- sort
  alliance_names TEXT[] NOT NULL,       -- facet
  participant_names TEXT[] NOT NULL
);

CREATE INDEX idx_battle_documents_system_name ON battle_documents (system_name);
CREATE INDEX idx_battle_documents_security_type ON battle_documents (security_type);
CREATE INDEX idx_battle_documents_start_time ON battle_documents (start_time);
CREATE INDEX idx_battle_documents_total_kills ON battle_documents (total_kills);
CREATE INDEX idx_battle_documents_total_isk_destroyed ON battle_documents (total_isk_destroyed);
CREATE INDEX idx_battle_documents_alliance_names ON battle_documents USING GIN (alliance_names);
