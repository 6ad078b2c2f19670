-- U002__create_notification_history.sql
-- Description: undo V002: notifications sent

DROP TABLE notification_history;
