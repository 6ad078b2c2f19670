-- V001__create_battle_documents.sql
-- Description: Create battle_documents, the seed's Typesense `battles` collection
-- Rollback: U001__create_battle_documents.sql

-- SQLite version of ../postgres/V001__create_battle_documents.sql:
-- TEXT[] -> TEXT (a JSON array). Primary key columns say NOT NULL: unlike
-- PostgreSQL, SQLite lets a primary key other than INTEGER PRIMARY KEY hold
-- NULL.

-- The seed keeps this collection in Typesense. Here it is a table the search
-- service fills from events, one column per Typesense field: string -> TEXT,
-- int32 -> INT, int64 -> BIGINT, string[] -> TEXT holding a JSON array.
-- Typesense fields are required unless marked optional, so every column is
-- NOT NULL. Fields the seed marks `facet` or `sort` get an index.
-- The array facet alliance_names has no SQLite index (PostgreSQL's version
-- gives it a GIN index); filter it with json_each().

CREATE TABLE battle_documents (
  id TEXT NOT NULL PRIMARY KEY,         -- the battle's id (from battle.created)
  system_name TEXT NOT NULL,            -- facet
  security_type TEXT NOT NULL,          -- facet
  start_time BIGINT NOT NULL,           -- Unix time; sort
  total_kills INT NOT NULL,             -- sort
  total_isk_destroyed BIGINT NOT NULL,  -- sort
  alliance_names TEXT NOT NULL,         -- JSON array; facet
  participant_names TEXT NOT NULL       -- JSON array
);

CREATE INDEX idx_battle_documents_system_name ON battle_documents (system_name);
CREATE INDEX idx_battle_documents_security_type ON battle_documents (security_type);
CREATE INDEX idx_battle_documents_start_time ON battle_documents (start_time);
CREATE INDEX idx_battle_documents_total_kills ON battle_documents (total_kills);
CREATE INDEX idx_battle_documents_total_isk_destroyed ON battle_documents (total_isk_destroyed);
