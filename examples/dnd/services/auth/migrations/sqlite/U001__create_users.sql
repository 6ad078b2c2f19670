-- U001__create_users.sql
-- Description: undo V001: create users

DROP INDEX idx_users_email;
DROP TABLE users;
