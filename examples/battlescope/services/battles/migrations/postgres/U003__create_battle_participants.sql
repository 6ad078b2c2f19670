-- U003__create_battle_participants.sql
-- Description: undo V003: pilots in a battle, denormalized

DROP TABLE battle_participants;
