-- U003__add_users_deleted_at.sql
-- Description: undo V003: add users.deleted_at for soft deletes (seed 002, pattern 3)

ALTER TABLE users DROP COLUMN deleted_at;
