-- U001__create_credentials.sql
-- Description: undo V001: create credentials, each user's login name and password hash

DROP INDEX idx_credentials_email;
DROP INDEX idx_credentials_user_id;
DROP TABLE credentials;
