-- U002__add_project_settings.sql
-- Description: undo V002: drop project settings

DROP TABLE project_settings;
