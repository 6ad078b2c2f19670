-- U002__add_user_roles.sql
-- Description: undo V002: add roles and user_roles so a user can hold several roles
-- The rows V002 copied go with the tables; users.role was never changed.

DROP INDEX idx_user_roles_role_id;
DROP TABLE user_roles;
DROP TABLE roles;
