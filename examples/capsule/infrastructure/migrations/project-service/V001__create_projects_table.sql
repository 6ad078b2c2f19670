-- V001__create_projects_table.sql
-- Description: Create projects table
-- Rollback: U001__create_projects_table.sql

CREATE TABLE projects (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL CHECK (char_length(name) <= 255),
    description TEXT,
    owner_id BIGINT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- owner_id is a user id of the auth service, whose users table lives in
-- another database (usecapsule_auth): no foreign key, an index instead.
CREATE INDEX idx_projects_owner_id ON projects(owner_id);
