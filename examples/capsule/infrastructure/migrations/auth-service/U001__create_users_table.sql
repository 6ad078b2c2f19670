-- U001__create_users_table.sql
-- Description: undo V001: drop the users table and its trigger function

DROP TABLE users;
DROP FUNCTION update_updated_at_column();
