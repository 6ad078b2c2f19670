-- V001__create_battles.sql
-- Description: Create battles, combat encounters clustered from enriched killmails
-- Rollback: U001__create_battles.sql

-- The seed's Clusterer Service (seed 001's Battle Service) owns battles_db.
CREATE TABLE battles (
  id UUID PRIMARY KEY,
  system_id BIGINT NOT NULL,
  system_name TEXT NOT NULL,        -- denormalized from enrichment
  security_type TEXT NOT NULL,
  start_time TIMESTAMPTZ NOT NULL,
  end_time TIMESTAMPTZ NOT NULL,
  total_kills BIGINT NOT NULL,
  total_isk_destroyed BIGINT NOT NULL,
  zkill_related_url TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_battles_system_id ON battles (system_id);
