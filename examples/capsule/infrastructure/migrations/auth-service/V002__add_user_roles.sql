-- V002__add_user_roles.sql
-- Description: Add roles and user_roles so a user can hold several roles
-- Rollback: U002__add_user_roles.sql

-- The new table's foreign key takes a SHARE ROW EXCLUSIVE lock on the
-- table it references: give up rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

CREATE TABLE roles (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT UNIQUE NOT NULL CHECK (char_length(name) <= 50),
    description TEXT,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

INSERT INTO roles (name, description) VALUES
    ('user', 'Default role of every account'),
    ('admin', 'Full access to the platform');

-- Both sides live in this service's own database, so real foreign keys.
CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    granted_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    PRIMARY KEY (user_id, role_id)
);

-- user_id leads the primary key; role_id needs an index of its own.
CREATE INDEX idx_user_roles_role_id ON user_roles(role_id);

-- Carry over the one role each user has today (users.role from V001). The
-- column stays: code moves to user_roles first, and a later migration can
-- drop it once nothing reads it.
INSERT INTO roles (name)
SELECT DISTINCT role FROM users WHERE role IS NOT NULL
ON CONFLICT (name) DO NOTHING;

INSERT INTO user_roles (user_id, role_id)
SELECT u.id, r.id FROM users u JOIN roles r ON r.name = u.role;
