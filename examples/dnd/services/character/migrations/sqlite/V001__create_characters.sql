-- V001__create_characters.sql
-- Description: Create characters and their inventories
-- Rollback: U001__create_characters.sql

-- SQLite version of ../postgres/V001__create_characters.sql: identity -> INTEGER
-- PRIMARY KEY (the rowid), TIMESTAMPTZ -> TEXT (ISO-8601, UTC), BOOLEAN ->
-- 0/1.

-- player_id is auth's users.id: another service's data, so no foreign key
-- (it arrives by event).
CREATE TABLE characters (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  class TEXT NOT NULL,
  level INTEGER NOT NULL DEFAULT 1 CHECK (level BETWEEN 1 AND 20),
  player_id INTEGER NOT NULL,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_characters_player_id ON characters (player_id);

-- item_id names an item of the catalog service: a plain number, no foreign
-- key.
CREATE TABLE inventories (
  id INTEGER PRIMARY KEY,
  character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
  item_id INTEGER NOT NULL,
  quantity INTEGER NOT NULL DEFAULT 1 CHECK (quantity > 0),
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX idx_inventories_character_id_item_id ON inventories (character_id, item_id);
CREATE INDEX idx_inventories_item_id ON inventories (item_id);
