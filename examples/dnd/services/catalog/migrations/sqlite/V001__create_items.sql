-- V001__create_items.sql
-- Description: Create the item and spell catalog
-- Rollback: U001__create_items.sql

-- SQLite version of ../postgres/V001__create_items.sql: identity -> INTEGER
-- PRIMARY KEY (the rowid), TIMESTAMPTZ -> TEXT (ISO-8601, UTC), BOOLEAN ->
-- 0/1.

-- price_cp: the price in copper pieces, so it is an exact integer.
CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  rarity TEXT NOT NULL DEFAULT 'common',
  price_cp INTEGER NOT NULL DEFAULT 0 CHECK (price_cp >= 0),
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX idx_items_name ON items (name);

CREATE TABLE spells (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  spell_level INTEGER NOT NULL CHECK (spell_level BETWEEN 0 AND 9),
  school TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX idx_spells_name ON spells (name);
