-- U002__add_deployment_logs.sql
-- Description: undo V002: drop deployment logs

DROP TABLE deployment_logs;
