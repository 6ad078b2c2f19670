-- V002__create_killmail_documents.sql
-- Description: Create killmail_documents, the seed's Typesense `killmails` collection
-- Rollback: U002__create_killmail_documents.sql

-- SQLite version of ../postgres/V002__create_killmail_documents.sql. Primary
-- key columns say NOT NULL: unlike PostgreSQL, SQLite lets a primary key
-- other than INTEGER PRIMARY KEY hold NULL.

-- The seed keeps this collection in Typesense. Here it is a table the search
-- service fills from events, one column per Typesense field: string -> TEXT,
-- int64 -> BIGINT. Typesense fields are required unless marked optional, so
-- every column is NOT NULL. Fields the seed marks `facet` or `sort` get an
-- index.

CREATE TABLE killmail_documents (
  killmail_id TEXT NOT NULL PRIMARY KEY,  -- a string in the seed's schema (from killmail.enriched)
  victim_name TEXT NOT NULL,
  ship_type_name TEXT NOT NULL,           -- facet
  system_name TEXT NOT NULL,              -- facet
  occurred_at BIGINT NOT NULL             -- Unix time; sort
);

CREATE INDEX idx_killmail_documents_ship_type_name ON killmail_documents (ship_type_name);
CREATE INDEX idx_killmail_documents_system_name ON killmail_documents (system_name);
CREATE INDEX idx_killmail_documents_occurred_at ON killmail_documents (occurred_at);
