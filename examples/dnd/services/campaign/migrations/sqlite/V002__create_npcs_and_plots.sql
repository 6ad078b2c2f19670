-- V002__create_npcs_and_plots.sql
-- Description: Create npcs and plots
-- Rollback: U002__create_npcs_and_plots.sql

-- SQLite version of ../postgres/V002__create_npcs_and_plots.sql: identity -> INTEGER
-- PRIMARY KEY (the rowid), TIMESTAMPTZ -> TEXT (ISO-8601, UTC), BOOLEAN ->
-- 0/1.

CREATE TABLE npcs (
  id INTEGER PRIMARY KEY,
  campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  disposition TEXT NOT NULL DEFAULT 'neutral',
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_npcs_campaign_id ON npcs (campaign_id);

CREATE TABLE plots (
  id INTEGER PRIMARY KEY,
  campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  summary TEXT NOT NULL,
  done INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_plots_campaign_id ON plots (campaign_id);
