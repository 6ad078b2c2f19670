-- U003__create_battle_participants.sql
-- Description: undo V003: create battle_participants, the pilots of each battle

DROP INDEX idx_battle_participants_side_id;
DROP INDEX idx_battle_participants_ship_type_id;
DROP INDEX idx_battle_participants_corp_id;
DROP INDEX idx_battle_participants_alliance_id;
DROP INDEX idx_battle_participants_character_id;
DROP TABLE battle_participants;
