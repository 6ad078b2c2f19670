-- U002__create_notification_history.sql
-- Description: undo V002: create notification_history, every notification sent

DROP INDEX idx_notification_history_subscription_id;
DROP INDEX idx_notification_history_user_id;
DROP TABLE notification_history;
