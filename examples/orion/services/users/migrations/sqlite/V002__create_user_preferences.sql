-- V002__create_user_preferences.sql
-- Description: Create user_preferences, the seed's reviewed UserPreferences model
-- Rollback: U002__create_user_preferences.sql

-- SQLite version of ../postgres/V002__create_user_preferences.sql:
-- UUID -> TEXT; TIMESTAMPTZ -> TEXT (ISO-8601, UTC); DEFAULT NOW() -> DEFAULT
-- CURRENT_TIMESTAMP. Primary key columns say NOT NULL: unlike PostgreSQL,
-- SQLite lets a primary key other than INTEGER PRIMARY KEY hold NULL.

CREATE TABLE user_preferences (
  id TEXT NOT NULL PRIMARY KEY,   -- UUID
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  email_notifications BOOLEAN NOT NULL DEFAULT TRUE,
  theme TEXT NOT NULL DEFAULT 'light' CHECK (theme IN ('light', 'dark')),
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE UNIQUE INDEX idx_user_preferences_user_id ON user_preferences (user_id);
