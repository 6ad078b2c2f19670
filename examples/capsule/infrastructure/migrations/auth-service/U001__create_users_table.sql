-- U001__create_users_table.sql
-- Description: undo V001: create users table with basic authentication fields
-- Newest first: trigger, function, indexes, table. The development admin row
-- V001 inserted goes with the table.

DROP TRIGGER update_users_updated_at ON users;
DROP FUNCTION update_updated_at_column();
DROP INDEX idx_users_role;
DROP INDEX idx_users_is_active;
DROP INDEX idx_users_email;
DROP TABLE users;
