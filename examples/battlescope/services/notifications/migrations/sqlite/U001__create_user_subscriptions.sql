-- U001__create_user_subscriptions.sql
-- Description: undo V001: create user_subscriptions, what each user wants to be notified about

DROP INDEX idx_user_subscriptions_user_id;
DROP TABLE user_subscriptions;
