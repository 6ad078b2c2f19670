-- U001__create_deployments_table.sql
-- Description: undo V001: create deployments table, one row per build and release

DROP INDEX idx_deployments_status;
DROP INDEX idx_deployments_triggered_by_user_id;
DROP INDEX idx_deployments_project_id;
DROP TABLE deployments;
