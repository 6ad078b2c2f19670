-- U001__create_battles.sql
-- Description: undo V001: combat encounters clustered from enriched killmails

DROP TABLE battles;
