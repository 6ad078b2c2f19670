-- V001__create_notifications.sql
-- Description: Create notifications, the seed's Notification model (the "Good Solution")
-- Rollback: U001__create_notifications.sql

-- The seed's cross-service answer: keep the user's id without a relation,
-- and a denormalized copy of the email so sending needs no call to the users
-- service. user.updated events keep the copy current. The Prisma enum
-- NotificationStatus becomes TEXT with a CHECK.
CREATE TABLE notifications (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL,    -- users service id: no foreign key
  email TEXT NOT NULL,      -- denormalized from user.created / user.updated
  template TEXT NOT NULL,   -- which message to render
  status TEXT NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'sending', 'delivered', 'failed', 'bounced')),
  metadata JSONB,           -- flexible data only; anything queried gets a column
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- The seed's index strategy: by user, by user and status, newest first.
CREATE INDEX idx_notifications_user_id ON notifications (user_id);
CREATE INDEX idx_notifications_user_id_status ON notifications (user_id, status);
CREATE INDEX idx_notifications_created_at ON notifications (created_at);
