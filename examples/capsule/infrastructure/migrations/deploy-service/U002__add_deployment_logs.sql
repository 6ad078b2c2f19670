-- U002__add_deployment_logs.sql
-- Description: undo V002: add deployment_logs, the build and release output of each deployment

DROP INDEX idx_deployment_logs_deployment_id;
DROP TABLE deployment_logs;
