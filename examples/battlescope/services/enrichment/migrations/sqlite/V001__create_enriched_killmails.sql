-- V001__create_enriched_killmails.sql
-- Description: killmails with names resolved from ESI, denormalized
-- Rollback: U001__create_enriched_killmails.sql

CREATE TABLE enriched_killmails (
  killmail_id INTEGER PRIMARY KEY,
  ship_type_id INTEGER NOT NULL,
  ship_type_name TEXT NOT NULL,
  ship_group_name TEXT NOT NULL,
  system_id INTEGER NOT NULL,
  system_name TEXT NOT NULL,
  region_name TEXT NOT NULL,
  security_status NUMERIC NOT NULL,
  victim_character_id INTEGER,
  victim_character_name TEXT,
  victim_corp_name TEXT,
  victim_alliance_name TEXT,
  attacker_names TEXT,           -- denormalized attacker data
  enriched_at TEXT NOT NULL,
  version INT NOT NULL DEFAULT 1    -- schema version for evolution
);

CREATE INDEX idx_enriched_killmails_ship_type_id ON enriched_killmails (ship_type_id);
CREATE INDEX idx_enriched_killmails_system_id ON enriched_killmails (system_id);
CREATE INDEX idx_enriched_killmails_victim_character_id ON enriched_killmails (victim_character_id);
