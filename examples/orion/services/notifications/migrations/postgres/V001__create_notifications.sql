-- V001__create_notifications.sql
-- Description: notifications with the user id and a denormalized email (seed 002 "Good Solution")
-- Rollback: U001__create_notifications.sql

CREATE TABLE notifications (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL,            -- users service id, no foreign key
  email TEXT NOT NULL,                -- denormalized from user.updated events
  status TEXT NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'sending', 'delivered', 'failed', 'bounced')),
  metadata JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_notifications_user_id ON notifications (user_id);
CREATE INDEX idx_notifications_user_id_status ON notifications (user_id, status);
CREATE INDEX idx_notifications_created_at ON notifications (created_at);
