-- V002__create_esi_cache_entries.sql
-- Description: Create esi_cache_entries, cached responses of EVE's ESI API
-- Rollback: U002__create_esi_cache_entries.sql

-- SQLite version of ../postgres/V002__create_esi_cache_entries.sql:
-- TIMESTAMPTZ -> TEXT (ISO-8601, UTC); JSONB -> TEXT (JSON). Primary key
-- columns say NOT NULL: unlike PostgreSQL, SQLite lets a primary key other
-- than INTEGER PRIMARY KEY hold NULL.

CREATE TABLE esi_cache_entries (
  cache_key TEXT NOT NULL PRIMARY KEY,
  cache_value TEXT NOT NULL,  -- JSON
  cached_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
