-- V003__create_battle_participants.sql
-- Description: Create battle_participants, the pilots of each battle
-- Rollback: U003__create_battle_participants.sql

-- The new table's foreign key takes a SHARE ROW EXCLUSIVE lock on the
-- table it references: give up rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

CREATE TABLE battle_participants (
  battle_id UUID REFERENCES battles(id) ON DELETE CASCADE,
  character_id BIGINT NOT NULL,
  character_name TEXT,              -- denormalized
  alliance_id BIGINT,
  alliance_name TEXT,               -- denormalized
  corp_id BIGINT,
  corp_name TEXT,                   -- denormalized
  ship_type_id BIGINT,
  ship_type_name TEXT,              -- denormalized
  side_id BIGINT,
  is_victim BOOLEAN NOT NULL,
  PRIMARY KEY (battle_id, character_id)
);

CREATE INDEX idx_battle_participants_character_id ON battle_participants (character_id);
CREATE INDEX idx_battle_participants_alliance_id ON battle_participants (alliance_id);
CREATE INDEX idx_battle_participants_corp_id ON battle_participants (corp_id);
CREATE INDEX idx_battle_participants_ship_type_id ON battle_participants (ship_type_id);
CREATE INDEX idx_battle_participants_side_id ON battle_participants (side_id);
