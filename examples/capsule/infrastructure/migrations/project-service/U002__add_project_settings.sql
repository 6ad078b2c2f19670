-- U002__add_project_settings.sql
-- Description: undo V002: add project_settings, how each project is built and deployed

DROP TABLE project_settings;
