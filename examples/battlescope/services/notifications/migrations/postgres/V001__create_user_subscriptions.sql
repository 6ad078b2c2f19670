-- V001__create_user_subscriptions.sql
-- Description: what each user wants to hear about
-- Rollback: U001__create_user_subscriptions.sql

CREATE TABLE user_subscriptions (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL,
  subscription_type TEXT NOT NULL,    -- 'alliance', 'system', 'character'
  filter_value BIGINT NOT NULL,        -- alliance_id, system_id, character_id
  notification_channel TEXT NOT NULL, -- 'websocket', 'webhook', 'email'
  webhook_url TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  is_active BOOLEAN NOT NULL DEFAULT TRUE,
  UNIQUE (user_id, subscription_type, filter_value)
);
