-- V002__add_project_settings.sql
-- Description: Add project settings table, how each project is built and deployed
-- Rollback: DROP TABLE project_settings;

CREATE TABLE project_settings (
    id SERIAL PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    default_branch VARCHAR(255) DEFAULT 'main',
    root_directory VARCHAR(255) DEFAULT '.',
    install_command TEXT,
    build_command TEXT,
    output_directory VARCHAR(255),
    auto_deploy BOOLEAN DEFAULT true,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE UNIQUE INDEX idx_project_settings_project_id ON project_settings(project_id);
