-- V001__create_killmail_events.sql
-- Description: Create killmail_events, raw killmails as fetched from zKillboard
-- Rollback: U001__create_killmail_events.sql

-- Owned by the ingestion service alone. Other services learn about these
-- killmails from the killmail.ingested event, never from this table.
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
  battle_id UUID             -- nullable; set from the battles service's events, no foreign key
);

CREATE INDEX idx_killmail_events_system_id ON killmail_events (system_id);
CREATE INDEX idx_killmail_events_victim_alliance_id ON killmail_events (victim_alliance_id);
CREATE INDEX idx_killmail_events_battle_id ON killmail_events (battle_id);
