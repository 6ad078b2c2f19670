-- U002__add_user_roles.sql
-- Description: undo V002: drop user roles

DROP TABLE user_roles;
DROP TABLE roles;
