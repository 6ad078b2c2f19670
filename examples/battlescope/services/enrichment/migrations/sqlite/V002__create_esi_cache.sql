-- V002__create_esi_cache.sql
-- Description: cache of ESI responses
-- Rollback: U002__create_esi_cache.sql

CREATE TABLE esi_cache (
  cache_key TEXT PRIMARY KEY,
  cache_value TEXT NOT NULL,
  cached_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
