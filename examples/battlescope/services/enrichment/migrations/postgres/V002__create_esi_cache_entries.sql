-- V002__create_esi_cache_entries.sql
-- Description: Create esi_cache_entries, cached responses of EVE's ESI API
-- Rollback: U002__create_esi_cache_entries.sql

CREATE TABLE esi_cache_entries (
  cache_key TEXT PRIMARY KEY,
  cache_value JSONB NOT NULL,
  cached_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
);
