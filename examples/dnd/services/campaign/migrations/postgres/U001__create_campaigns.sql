-- U001__create_campaigns.sql
-- Description: undo V001: create campaigns and their chapters

DROP INDEX idx_chapters_campaign_id_position;
DROP TABLE chapters;
DROP INDEX idx_campaigns_dungeon_master_id;
DROP TABLE campaigns;
