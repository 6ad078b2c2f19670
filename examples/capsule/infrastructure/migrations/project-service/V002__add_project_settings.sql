-- V002__add_project_settings.sql
-- Description: Add project_settings, how each project is built and deployed
-- Rollback: U002__add_project_settings.sql

-- One row per project: project_id is the primary key (and so indexed), and a
-- real foreign key, since projects is in this same database. Secrets and
-- environment variables do not belong here.

-- The new table's foreign key takes a SHARE ROW EXCLUSIVE lock on the
-- table it references: give up rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

CREATE TABLE project_settings (
    project_id BIGINT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    default_branch TEXT NOT NULL DEFAULT 'main' CHECK (char_length(default_branch) <= 255),
    root_directory TEXT NOT NULL DEFAULT '.' CHECK (char_length(root_directory) <= 255),
    install_command TEXT,
    build_command TEXT,
    output_directory TEXT CHECK (char_length(output_directory) <= 255),
    auto_deploy BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- Existing projects get the default settings.
INSERT INTO project_settings (project_id)
SELECT id FROM projects;
