-- U001__create_users_table.sql
-- Description: Undo V001: drop the users table, its indexes and trigger
-- The development admin row V001 inserted goes with the table.

DROP TRIGGER update_users_updated_at ON users;
DROP FUNCTION update_updated_at_column();
DROP INDEX idx_users_role;
DROP INDEX idx_users_active;
DROP INDEX idx_users_email;
DROP TABLE users;
