-- V002__create_battle_killmails.sql
-- Description: killmails of a battle, denormalized from enrichment (no foreign keys across services)
-- Rollback: U002__create_battle_killmails.sql

CREATE TABLE battle_killmails (
  battle_id UUID REFERENCES battles(id) ON DELETE CASCADE,
  killmail_id BIGINT NOT NULL,
  occurred_at TIMESTAMPTZ NOT NULL,
  zkb_url TEXT NOT NULL,
  ship_type_name TEXT,
  victim_name TEXT,
  victim_alliance_name TEXT,
  isk_value BIGINT,
  side_id INT,
  PRIMARY KEY (battle_id, killmail_id)
);

CREATE INDEX idx_battle_killmails_killmail_id ON battle_killmails (killmail_id);
CREATE INDEX idx_battle_killmails_side_id ON battle_killmails (side_id);
