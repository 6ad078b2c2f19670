-- V002__create_killmail_documents.sql
-- Description: search documents for killmails, indexed from killmail.enriched
-- Rollback: U002__create_killmail_documents.sql

CREATE TABLE killmail_documents (
  killmail_id TEXT PRIMARY KEY,
  victim_name TEXT,
  ship_type_name TEXT,
  system_name TEXT,
  occurred_at INTEGER NOT NULL
);

CREATE INDEX idx_killmail_documents_ship_type_name ON killmail_documents (ship_type_name);
CREATE INDEX idx_killmail_documents_occurred_at ON killmail_documents (occurred_at);
