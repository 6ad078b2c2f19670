-- V001__create_deployments_table.sql
-- Description: Create deployments table, one row per build and release
-- Rollback: DROP TABLE deployments;

-- project_id belongs to the project service and triggered_by_user_id to the
-- auth service: their rows live in other databases, so no foreign keys.
CREATE TABLE deployments (
    id SERIAL PRIMARY KEY,
    project_id INTEGER NOT NULL,
    triggered_by_user_id INTEGER,
    git_branch VARCHAR(255) NOT NULL,
    commit_sha VARCHAR(40) NOT NULL,
    commit_message TEXT,
    status VARCHAR(20) DEFAULT 'queued',
    url VARCHAR(500),
    started_at TIMESTAMP WITH TIME ZONE,
    finished_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- Create indexes for performance
CREATE INDEX idx_deployments_project_id ON deployments(project_id);
CREATE INDEX idx_deployments_status ON deployments(status);
