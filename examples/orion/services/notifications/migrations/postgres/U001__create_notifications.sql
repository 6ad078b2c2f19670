-- U001__create_notifications.sql
-- Description: undo V001: notifications with the user id and a denormalized email (seed 002 "Good Solution")

DROP TABLE notifications;
