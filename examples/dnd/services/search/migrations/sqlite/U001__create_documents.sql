-- U001__create_documents.sql
-- Description: undo V001: create the search documents

DROP INDEX idx_documents_source_source_ref;
DROP TABLE documents;
