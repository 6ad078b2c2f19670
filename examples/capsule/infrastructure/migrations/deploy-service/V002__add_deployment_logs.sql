-- V002__add_deployment_logs.sql
-- Description: Add deployment_logs, the build and release output of each deployment
-- Rollback: U002__add_deployment_logs.sql

CREATE TABLE deployment_logs (
    id BIGSERIAL PRIMARY KEY,
    deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    stream VARCHAR(10) NOT NULL DEFAULT 'stdout'
        CHECK (stream IN ('stdout', 'stderr', 'system')),
    message TEXT NOT NULL,
    logged_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_deployment_logs_deployment_id ON deployment_logs(deployment_id);
