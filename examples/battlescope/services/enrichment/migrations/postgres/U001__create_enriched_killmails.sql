-- U001__create_enriched_killmails.sql
-- Description: undo V001: killmails with names resolved from ESI, denormalized

DROP TABLE enriched_killmails;
