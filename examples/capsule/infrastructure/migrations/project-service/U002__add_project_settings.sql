-- U002__add_project_settings.sql
-- Description: Undo V002: drop the project settings table

DROP INDEX idx_project_settings_project_id;
DROP TABLE project_settings;
