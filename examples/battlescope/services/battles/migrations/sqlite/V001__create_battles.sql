-- V001__create_battles.sql
-- Description: Create battles, combat encounters clustered from enriched killmails
-- Rollback: U001__create_battles.sql

-- SQLite version of ../postgres/V001__create_battles.sql: UUID -> TEXT;
-- TIMESTAMPTZ -> TEXT (ISO-8601, UTC); DEFAULT NOW() -> DEFAULT
-- CURRENT_TIMESTAMP. Primary key columns say NOT NULL: unlike PostgreSQL,
-- SQLite lets a primary key other than INTEGER PRIMARY KEY hold NULL.

CREATE TABLE battles (
  id TEXT NOT NULL PRIMARY KEY,     -- UUID
  system_id BIGINT NOT NULL,
  system_name TEXT NOT NULL,        -- denormalized from enrichment
  security_type TEXT NOT NULL,
  start_time TEXT NOT NULL,
  end_time TEXT NOT NULL,
  total_kills BIGINT NOT NULL,
  total_isk_destroyed BIGINT NOT NULL,
  zkill_related_url TEXT,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_battles_system_id ON battles (system_id);
