-- V002__add_project_settings.sql
-- Description: Add per-project settings
-- Rollback: U002__add_project_settings.sql

CREATE TABLE project_settings (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    default_branch VARCHAR(255) NOT NULL DEFAULT 'main',
    auto_deploy BOOLEAN NOT NULL DEFAULT false,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);
