-- V001__create_enriched_killmails.sql
-- Description: Create enriched_killmails, killmails with names resolved from ESI
-- Rollback: U001__create_enriched_killmails.sql

-- SQLite version of ../postgres/V001__create_enriched_killmails.sql:
-- TIMESTAMPTZ -> TEXT (ISO-8601, UTC); JSONB -> TEXT (JSON);
-- DECIMAL -> NUMERIC. Primary key columns say NOT NULL: unlike PostgreSQL,
-- SQLite lets a primary key other than INTEGER PRIMARY KEY hold NULL.

CREATE TABLE enriched_killmails (
  killmail_id BIGINT NOT NULL PRIMARY KEY,
  ship_type_id BIGINT NOT NULL,
  ship_type_name TEXT NOT NULL,
  ship_group_name TEXT NOT NULL,
  system_id BIGINT NOT NULL,
  system_name TEXT NOT NULL,
  region_name TEXT NOT NULL,
  security_status NUMERIC NOT NULL,
  victim_character_id BIGINT,
  victim_character_name TEXT,
  victim_corp_name TEXT,
  victim_alliance_name TEXT,
  attacker_names TEXT,            -- JSON: denormalized attacker data
  enriched_at TEXT NOT NULL,
  version INT NOT NULL DEFAULT 1  -- schema version for evolution
);

CREATE INDEX idx_enriched_killmails_ship_type_id ON enriched_killmails (ship_type_id);
CREATE INDEX idx_enriched_killmails_system_id ON enriched_killmails (system_id);
CREATE INDEX idx_enriched_killmails_victim_character_id ON enriched_killmails (victim_character_id);
