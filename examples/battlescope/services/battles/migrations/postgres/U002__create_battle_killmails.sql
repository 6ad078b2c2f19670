-- U002__create_battle_killmails.sql
-- Description: undo V002: create battle_killmails, the killmails of each battle

DROP INDEX idx_battle_killmails_side_id;
DROP INDEX idx_battle_killmails_killmail_id;
DROP TABLE battle_killmails;
