-- V002__create_user_preferences.sql
-- Description: Create user_preferences, the seed's reviewed UserPreferences model
-- Rollback: U002__create_user_preferences.sql

-- The seed's schema-change request, with the database lead's review applied:
-- theme is constrained to known values (the review asked for an enum; a
-- CHECK on TEXT is the same guarantee and easier to extend), and the table
-- gets timestamps. users is in this same database, so user_id may carry a
-- real foreign key; only references to other services' databases must not.
-- The review also asked for an index on (user_id, created_at); user_id is
-- unique here (one row per user), so its unique index already serves that.

-- The new table's foreign key takes a SHARE ROW EXCLUSIVE lock on the
-- table it references: give up rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

CREATE TABLE user_preferences (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  email_notifications BOOLEAN NOT NULL DEFAULT TRUE,
  theme TEXT NOT NULL DEFAULT 'light' CHECK (theme IN ('light', 'dark')),
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE UNIQUE INDEX idx_user_preferences_user_id ON user_preferences (user_id);
