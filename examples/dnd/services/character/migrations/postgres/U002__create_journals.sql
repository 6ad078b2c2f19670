-- U002__create_journals.sql
-- Description: undo V002: create journals and progression

DROP INDEX idx_progressions_character_id;
DROP TABLE progressions;
DROP INDEX idx_journals_character_id;
DROP TABLE journals;
