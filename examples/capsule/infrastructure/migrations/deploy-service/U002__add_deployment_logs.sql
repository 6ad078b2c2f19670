-- U002__add_deployment_logs.sql
-- Description: Undo V002: drop the deployment logs table

DROP INDEX idx_deployment_logs_deployment_id;
DROP TABLE deployment_logs;
