-- U001__create_enriched_killmails.sql
-- Description: undo V001: create enriched_killmails, killmails with names resolved from ESI

DROP INDEX idx_enriched_killmails_victim_character_id;
DROP INDEX idx_enriched_killmails_system_id;
DROP INDEX idx_enriched_killmails_ship_type_id;
DROP TABLE enriched_killmails;
