-- V003__create_battle_participants.sql
-- Description: pilots in a battle, denormalized
-- Rollback: U003__create_battle_participants.sql

CREATE TABLE battle_participants (
  battle_id TEXT REFERENCES battles(id) ON DELETE CASCADE,
  character_id INTEGER NOT NULL,
  character_name TEXT,
  alliance_id INTEGER,
  alliance_name TEXT,
  corp_id INTEGER,
  corp_name TEXT,
  ship_type_id INTEGER,
  ship_type_name TEXT,
  side_id INT,
  is_victim BOOLEAN NOT NULL,
  PRIMARY KEY (battle_id, character_id)
);

CREATE INDEX idx_battle_participants_character_id ON battle_participants (character_id);
CREATE INDEX idx_battle_participants_alliance_id ON battle_participants (alliance_id);
CREATE INDEX idx_battle_participants_corp_id ON battle_participants (corp_id);
CREATE INDEX idx_battle_participants_ship_type_id ON battle_participants (ship_type_id);
CREATE INDEX idx_battle_participants_side_id ON battle_participants (side_id);
