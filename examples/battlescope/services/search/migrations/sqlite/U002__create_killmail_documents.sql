-- U002__create_killmail_documents.sql
-- Description: undo V002: create killmail_documents, the seed's Typesense `killmails` collection

DROP INDEX idx_killmail_documents_occurred_at;
DROP INDEX idx_killmail_documents_system_name;
DROP INDEX idx_killmail_documents_ship_type_name;
DROP TABLE killmail_documents;
