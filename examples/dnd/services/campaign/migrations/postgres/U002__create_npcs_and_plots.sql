-- U002__create_npcs_and_plots.sql
-- Description: undo V002: create npcs and plots

DROP INDEX idx_plots_campaign_id;
DROP TABLE plots;
DROP INDEX idx_npcs_campaign_id;
DROP TABLE npcs;
