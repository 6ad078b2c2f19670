-- U001__create_battle_documents.sql
-- Description: undo V001: create battle_documents, the seed's Typesense `battles` collection

DROP INDEX idx_battle_documents_alliance_names;
DROP INDEX idx_battle_documents_total_isk_destroyed;
DROP INDEX idx_battle_documents_total_kills;
DROP INDEX idx_battle_documents_start_time;
DROP INDEX idx_battle_documents_security_type;
DROP INDEX idx_battle_documents_system_name;
DROP TABLE battle_documents;
