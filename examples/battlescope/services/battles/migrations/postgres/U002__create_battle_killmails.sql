-- U002__create_battle_killmails.sql
-- Description: undo V002: killmails of a battle, denormalized from enrichment (no foreign keys across services)

DROP TABLE battle_killmails;
