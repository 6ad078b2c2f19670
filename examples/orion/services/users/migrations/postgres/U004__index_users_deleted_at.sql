-- U004__index_users_deleted_at.sql
-- Description: undo V004: index users.deleted_at

DROP INDEX CONCURRENTLY idx_users_deleted_at;
