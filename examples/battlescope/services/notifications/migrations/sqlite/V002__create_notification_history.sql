-- V002__create_notification_history.sql
-- Description: Create notification_history, every notification sent
-- Rollback: U002__create_notification_history.sql

-- SQLite version of ../postgres/V002__create_notification_history.sql:
-- UUID -> TEXT; TIMESTAMPTZ -> TEXT (ISO-8601, UTC); DEFAULT NOW() -> DEFAULT
-- CURRENT_TIMESTAMP; JSONB -> TEXT (JSON). Primary key columns say NOT NULL:
-- unlike PostgreSQL, SQLite lets a primary key other than INTEGER PRIMARY KEY
-- hold NULL.

CREATE TABLE notification_history (
  id TEXT NOT NULL PRIMARY KEY,                            -- UUID
  user_id TEXT NOT NULL,
  subscription_id TEXT REFERENCES user_subscriptions(id),  -- same database: a real foreign key
  event_type TEXT NOT NULL,                                -- e.g. battle.created
  event_data TEXT NOT NULL,                                -- JSON: the event as received
  sent_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_notification_history_user_id ON notification_history (user_id);
CREATE INDEX idx_notification_history_subscription_id ON notification_history (subscription_id);
