-- V001__create_projects_table.sql
-- Description: Create the projects table
-- Rollback: U001__create_projects_table.sql

CREATE TABLE projects (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    description TEXT,
    owner_id INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- owner_id is the auth service's user id: no foreign key across services.
CREATE INDEX idx_projects_owner_id ON projects(owner_id);
