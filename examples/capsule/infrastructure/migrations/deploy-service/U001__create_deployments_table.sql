-- U001__create_deployments_table.sql
-- Description: Undo V001: drop the deployments table

DROP INDEX idx_deployments_status;
DROP INDEX idx_deployments_project_id;
DROP TABLE deployments;
