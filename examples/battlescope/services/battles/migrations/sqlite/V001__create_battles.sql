-- V001__create_battles.sql
-- Description: combat encounters clustered from enriched killmails
-- Rollback: U001__create_battles.sql

CREATE TABLE battles (
  id TEXT PRIMARY KEY,
  system_id INTEGER NOT NULL,
  system_name TEXT NOT NULL,        -- denormalized from enrichment
  security_type TEXT NOT NULL,
  start_time TEXT NOT NULL,
  end_time TEXT NOT NULL,
  total_kills INTEGER NOT NULL,
  total_isk_destroyed INTEGER NOT NULL,
  zkill_related_url TEXT,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_battles_system_id ON battles (system_id);
