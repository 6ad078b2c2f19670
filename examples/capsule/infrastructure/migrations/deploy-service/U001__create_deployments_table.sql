-- U001__create_deployments_table.sql
-- Description: undo V001: drop the deployments table

DROP TABLE deployments;
