-- V002__create_battle_killmails.sql
-- Description: Create battle_killmails, the killmails of each battle
-- Rollback: U002__create_battle_killmails.sql

-- The new table's foreign key takes a SHARE ROW EXCLUSIVE lock on the
-- table it references: give up rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

CREATE TABLE battle_killmails (
  battle_id UUID REFERENCES battles(id) ON DELETE CASCADE,  -- same database: a real foreign key
  killmail_id BIGINT NOT NULL,                              -- another service's id: no foreign key
  occurred_at TIMESTAMPTZ NOT NULL,
  zkb_url TEXT NOT NULL,
  -- Denormalized data from enrichment (no foreign keys!)
  ship_type_name TEXT,
  victim_name TEXT,
  victim_alliance_name TEXT,
  isk_value BIGINT,
  side_id BIGINT,
  PRIMARY KEY (battle_id, killmail_id)
);

CREATE INDEX idx_battle_killmails_killmail_id ON battle_killmails (killmail_id);
CREATE INDEX idx_battle_killmails_side_id ON battle_killmails (side_id);
