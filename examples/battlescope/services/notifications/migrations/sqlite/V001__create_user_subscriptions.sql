-- V001__create_user_subscriptions.sql
-- Description: Create user_subscriptions, what each user wants to be notified about
-- Rollback: U001__create_user_subscriptions.sql

-- SQLite version of ../postgres/V001__create_user_subscriptions.sql:
-- UUID -> TEXT; TIMESTAMPTZ -> TEXT (ISO-8601, UTC); DEFAULT NOW() -> DEFAULT
-- CURRENT_TIMESTAMP. Primary key columns say NOT NULL: unlike PostgreSQL,
-- SQLite lets a primary key other than INTEGER PRIMARY KEY hold NULL.

CREATE TABLE user_subscriptions (
  id TEXT NOT NULL PRIMARY KEY,        -- UUID
  user_id TEXT NOT NULL,               -- the user's id in the account system: no foreign key
  subscription_type TEXT NOT NULL,     -- 'alliance', 'system', 'character'
  filter_value BIGINT NOT NULL,        -- alliance_id, system_id, character_id
  notification_channel TEXT NOT NULL,  -- 'websocket', 'webhook', 'email'
  webhook_url TEXT,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  is_active BOOLEAN NOT NULL DEFAULT TRUE,
  UNIQUE (user_id, subscription_type, filter_value)
);

-- Review rule of these examples: every *_id column that does not lead the
-- primary key gets its own idx_<table>_<column>, here beside the UNIQUE
-- constraint's index.
CREATE INDEX idx_user_subscriptions_user_id ON user_subscriptions (user_id);
