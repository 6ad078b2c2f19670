-- V001__create_images.sql
-- Description: Create image records
-- Rollback: U001__create_images.sql

-- SQLite version of ../postgres/V001__create_images.sql: identity -> INTEGER
-- PRIMARY KEY (the rowid), TIMESTAMPTZ -> TEXT (ISO-8601, UTC), BOOLEAN ->
-- 0/1.

-- The image bytes live in object storage under object_key; owner_service
-- and owner_ref say whose portrait or map it is, without reaching into that
-- service's store.
CREATE TABLE images (
  id INTEGER PRIMARY KEY,
  owner_service TEXT NOT NULL,
  owner_ref INTEGER NOT NULL,
  object_key TEXT NOT NULL,
  content_type TEXT NOT NULL,
  size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX idx_images_object_key ON images (object_key);
CREATE INDEX idx_images_owner_service_owner_ref ON images (owner_service, owner_ref);
