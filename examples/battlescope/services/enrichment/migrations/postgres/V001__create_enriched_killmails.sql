-- V001__create_enriched_killmails.sql
-- Description: Create enriched_killmails, killmails with names resolved from ESI
-- Rollback: U001__create_enriched_killmails.sql

-- Names are resolved once, here, and travel to other services inside the
-- killmail.enriched event: they keep their own copies (denormalized).
CREATE TABLE enriched_killmails (
  killmail_id BIGINT PRIMARY KEY,
  ship_type_id BIGINT NOT NULL,
  ship_type_name TEXT NOT NULL,
  ship_group_name TEXT NOT NULL,
  system_id BIGINT NOT NULL,
  system_name TEXT NOT NULL,
  region_name TEXT NOT NULL,
  security_status DECIMAL NOT NULL,
  victim_character_id BIGINT,
  victim_character_name TEXT,
  victim_corp_name TEXT,
  victim_alliance_name TEXT,
  attacker_names JSONB,           -- denormalized attacker data
  enriched_at TIMESTAMPTZ NOT NULL,
  version BIGINT NOT NULL DEFAULT 1  -- schema version for evolution
);

CREATE INDEX idx_enriched_killmails_ship_type_id ON enriched_killmails (ship_type_id);
CREATE INDEX idx_enriched_killmails_system_id ON enriched_killmails (system_id);
CREATE INDEX idx_enriched_killmails_victim_character_id ON enriched_killmails (victim_character_id);
