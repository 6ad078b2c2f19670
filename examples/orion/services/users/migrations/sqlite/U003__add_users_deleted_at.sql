-- U003__add_users_deleted_at.sql
-- Description: undo V003: add users.deleted_at for soft deletes (seed 002, pattern 3)
-- The index goes first: SQLite refuses to drop a column an index still
-- uses (PostgreSQL would drop the index with it; naming it keeps both
-- engines' files alike).

DROP INDEX idx_users_deleted_at;
ALTER TABLE users DROP COLUMN deleted_at;
