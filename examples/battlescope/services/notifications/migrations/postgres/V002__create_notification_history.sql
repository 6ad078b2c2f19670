-- V002__create_notification_history.sql
-- Description: Create notification_history, every notification sent
-- Rollback: U002__create_notification_history.sql

-- The new table's foreign key takes a SHARE ROW EXCLUSIVE lock on the
-- table it references: give up rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

CREATE TABLE notification_history (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL,
  subscription_id UUID REFERENCES user_subscriptions(id),  -- same database: a real foreign key
  event_type TEXT NOT NULL,                                -- e.g. battle.created
  event_data JSONB NOT NULL,                               -- the event as received
  sent_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_notification_history_user_id ON notification_history (user_id);
CREATE INDEX idx_notification_history_subscription_id ON notification_history (subscription_id);
