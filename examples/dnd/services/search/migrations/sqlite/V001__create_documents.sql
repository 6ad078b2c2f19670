-- V001__create_documents.sql
-- Description: Create the search documents
-- Rollback: U001__create_documents.sql

-- SQLite version of ../postgres/V001__create_documents.sql: identity -> INTEGER
-- PRIMARY KEY (the rowid), TIMESTAMPTZ -> TEXT (ISO-8601, UTC), BOOLEAN ->
-- 0/1.

-- One document per indexed record of another service, rebuilt from its
-- events.
CREATE TABLE documents (
  id INTEGER PRIMARY KEY,
  source TEXT NOT NULL,
  source_ref INTEGER NOT NULL,
  title TEXT NOT NULL,
  body TEXT NOT NULL DEFAULT '',
  updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX idx_documents_source_source_ref ON documents (source, source_ref);
