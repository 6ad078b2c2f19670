-- V001__create_notifications.sql
-- Description: Create notifications, the seed's Notification model (the "Good Solution")
-- Rollback: U001__create_notifications.sql

-- SQLite version of ../postgres/V001__create_notifications.sql: UUID -> TEXT;
-- TIMESTAMPTZ -> TEXT (ISO-8601, UTC); DEFAULT NOW() -> DEFAULT
-- CURRENT_TIMESTAMP; JSONB -> TEXT (JSON). Primary key columns say NOT NULL:
-- unlike PostgreSQL, SQLite lets a primary key other than INTEGER PRIMARY KEY
-- hold NULL.

CREATE TABLE notifications (
  id TEXT NOT NULL PRIMARY KEY,  -- UUID
  user_id TEXT NOT NULL,    -- users service id: no foreign key
  email TEXT NOT NULL,      -- denormalized from user.created / user.updated
  template TEXT NOT NULL,   -- which message to render
  status TEXT NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'sending', 'delivered', 'failed', 'bounced')),
  metadata TEXT,            -- JSON; flexible data only
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_notifications_user_id ON notifications (user_id);
CREATE INDEX idx_notifications_user_id_status ON notifications (user_id, status);
CREATE INDEX idx_notifications_created_at ON notifications (created_at);
