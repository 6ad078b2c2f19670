-- U001__create_user_subscriptions.sql
-- Description: undo V001: what each user wants to hear about

DROP TABLE user_subscriptions;
