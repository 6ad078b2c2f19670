-- U001__create_battles.sql
-- Description: undo V001: create battles, combat encounters clustered from enriched killmails

DROP INDEX idx_battles_system_id;
DROP TABLE battles;
