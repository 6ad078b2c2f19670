-- V001__create_killmail_events.sql
-- Description: raw killmails as fetched from zKillboard
-- Rollback: U001__create_killmail_events.sql

CREATE TABLE killmail_events (
  killmail_id BIGINT PRIMARY KEY,
  system_id BIGINT NOT NULL,
  occurred_at TIMESTAMPTZ NOT NULL,
  fetched_at TIMESTAMPTZ NOT NULL,
  victim_alliance_id BIGINT,
  attacker_alliance_ids BIGINT[],
  isk_value BIGINT,
  zkb_url TEXT NOT NULL,
  processed_at TIMESTAMPTZ,  -- for processing tracking
  battle_id UUID              -- set from battles' events, never by foreign key
);

CREATE INDEX idx_killmail_events_system_id ON killmail_events (system_id);
CREATE INDEX idx_killmail_events_victim_alliance_id ON killmail_events (victim_alliance_id);
CREATE INDEX idx_killmail_events_battle_id ON killmail_events (battle_id);
