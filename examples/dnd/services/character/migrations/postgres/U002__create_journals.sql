-- U002__create_journals.sql
-- Description: undo V002: create journals and progression

DROP INDEX idx_progression_character_id;
DROP TABLE progression;
DROP INDEX idx_journals_character_id;
DROP TABLE journals;
