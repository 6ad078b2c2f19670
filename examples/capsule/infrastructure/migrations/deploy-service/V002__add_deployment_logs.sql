-- V002__add_deployment_logs.sql
-- Description: Add deployment_logs, the build and release output of each deployment
-- Rollback: U002__add_deployment_logs.sql

-- The new table's foreign key takes a SHARE ROW EXCLUSIVE lock on the
-- table it references: give up rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

CREATE TABLE deployment_logs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id BIGINT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    stream TEXT NOT NULL DEFAULT 'stdout' CHECK (char_length(stream) <= 10)
        CHECK (stream IN ('stdout', 'stderr', 'system')),
    message TEXT NOT NULL,
    logged_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_deployment_logs_deployment_id ON deployment_logs(deployment_id);
