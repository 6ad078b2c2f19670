-- U001__create_projects_table.sql
-- Description: Undo V001: drop the projects table

DROP TABLE projects;
