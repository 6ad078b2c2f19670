-- V002__create_notification_history.sql
-- Description: notifications sent
-- Rollback: U002__create_notification_history.sql

CREATE TABLE notification_history (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL,
  subscription_id UUID REFERENCES user_subscriptions(id),
  event_type TEXT NOT NULL,
  event_data JSONB NOT NULL,
  sent_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_notification_history_user_id ON notification_history (user_id);
CREATE INDEX idx_notification_history_subscription_id ON notification_history (subscription_id);
