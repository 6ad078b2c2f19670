-- V001__create_killmail_events.sql
-- Description: raw killmails as fetched from zKillboard
-- Rollback: U001__create_killmail_events.sql

CREATE TABLE killmail_events (
  killmail_id INTEGER PRIMARY KEY,
  system_id INTEGER NOT NULL,
  occurred_at TEXT NOT NULL,           -- ISO-8601 UTC
  fetched_at TEXT NOT NULL,
  victim_alliance_id INTEGER,
  attacker_alliance_ids TEXT,          -- JSON array
  isk_value INTEGER,
  zkb_url TEXT NOT NULL,
  processed_at TEXT,
  battle_id TEXT                       -- set from battles' events, never by foreign key
);

CREATE INDEX idx_killmail_events_system_id ON killmail_events (system_id);
CREATE INDEX idx_killmail_events_victim_alliance_id ON killmail_events (victim_alliance_id);
CREATE INDEX idx_killmail_events_battle_id ON killmail_events (battle_id);
