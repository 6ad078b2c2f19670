-- U002__create_killmail_documents.sql
-- Description: undo V002: search documents for killmails, indexed from killmail.enriched

DROP TABLE killmail_documents;
