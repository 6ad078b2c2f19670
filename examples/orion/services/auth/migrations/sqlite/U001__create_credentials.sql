-- U001__create_credentials.sql
-- Description: undo V001: login credentials; user_id is the users service id, no foreign key

DROP TABLE credentials;
