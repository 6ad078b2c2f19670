-- V001__create_killmail_events.sql
-- Description: Create killmail_events, raw killmails as fetched from zKillboard
-- Rollback: U001__create_killmail_events.sql

-- SQLite version of ../postgres/V001__create_killmail_events.sql:
-- UUID -> TEXT; TIMESTAMPTZ -> TEXT (ISO-8601, UTC); BIGINT[] -> TEXT (a JSON
-- array). Primary key columns say NOT NULL: unlike PostgreSQL, SQLite lets a
-- primary key other than INTEGER PRIMARY KEY hold NULL.

CREATE TABLE killmail_events (
  killmail_id BIGINT NOT NULL PRIMARY KEY,
  system_id BIGINT NOT NULL,
  occurred_at TEXT NOT NULL,
  fetched_at TEXT NOT NULL,
  victim_alliance_id BIGINT,
  attacker_alliance_ids TEXT,  -- JSON array of alliance ids
  isk_value BIGINT,
  zkb_url TEXT NOT NULL,
  processed_at TEXT,           -- for processing tracking
  battle_id TEXT               -- nullable; set from the battles service's events, no foreign key
);

CREATE INDEX idx_killmail_events_system_id ON killmail_events (system_id);
CREATE INDEX idx_killmail_events_victim_alliance_id ON killmail_events (victim_alliance_id);
CREATE INDEX idx_killmail_events_battle_id ON killmail_events (battle_id);
