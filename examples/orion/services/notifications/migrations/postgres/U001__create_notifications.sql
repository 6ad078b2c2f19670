-- U001__create_notifications.sql
-- Description: undo V001: create notifications, the seed's Notification model (the "Good Solution")

DROP INDEX idx_notifications_created_at;
DROP INDEX idx_notifications_user_id_status;
DROP INDEX idx_notifications_user_id;
DROP TABLE notifications;
