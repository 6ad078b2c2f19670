-- U001__create_projects_table.sql
-- Description: undo V001: drop the projects table

DROP TABLE projects;
