-- U001__create_projects_table.sql
-- Description: undo V001: create projects table

DROP INDEX idx_projects_owner_id;
DROP TABLE projects;
