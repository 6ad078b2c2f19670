-- V002__create_notification_history.sql
-- Description: notifications sent
-- Rollback: U002__create_notification_history.sql

CREATE TABLE notification_history (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  subscription_id TEXT REFERENCES user_subscriptions(id),
  event_type TEXT NOT NULL,
  event_data TEXT NOT NULL,
  sent_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_notification_history_user_id ON notification_history (user_id);
CREATE INDEX idx_notification_history_subscription_id ON notification_history (subscription_id);
