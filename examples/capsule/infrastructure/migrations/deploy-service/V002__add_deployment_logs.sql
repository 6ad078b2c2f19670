-- V002__add_deployment_logs.sql
-- Description: Add deployment logs table, the build and release output of each deployment
-- Rollback: DROP TABLE deployment_logs;

CREATE TABLE deployment_logs (
    id SERIAL PRIMARY KEY,
    deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    stream VARCHAR(10) DEFAULT 'stdout',
    message TEXT NOT NULL,
    logged_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE INDEX idx_deployment_logs_deployment_id ON deployment_logs(deployment_id);
