-- U001__create_battle_documents.sql
-- Description: undo V001: search documents for battles, indexed from battle.created

DROP TABLE battle_documents;
