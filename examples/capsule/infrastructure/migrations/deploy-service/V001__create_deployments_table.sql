-- V001__create_deployments_table.sql
-- Description: Create deployments table, one row per build and release
-- Rollback: U001__create_deployments_table.sql

-- project_id is the project service's id and triggered_by_user_id the auth
-- service's: both rows live in other databases, so plain columns with
-- indexes, no foreign keys.
CREATE TABLE deployments (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id BIGINT NOT NULL,
    triggered_by_user_id BIGINT,
    git_branch TEXT NOT NULL CHECK (char_length(git_branch) <= 255),
    commit_sha TEXT NOT NULL CHECK (char_length(commit_sha) <= 40),
    commit_message TEXT,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (char_length(status) <= 20)
        CHECK (status IN ('queued', 'building', 'deploying', 'ready', 'failed', 'cancelled')),
    url TEXT,
    started_at TIMESTAMP WITH TIME ZONE,
    finished_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE INDEX idx_deployments_project_id ON deployments(project_id);
CREATE INDEX idx_deployments_triggered_by_user_id ON deployments(triggered_by_user_id);
CREATE INDEX idx_deployments_status ON deployments(status);
