-- U002__create_esi_cache.sql
-- Description: undo V002: cache of ESI responses

DROP TABLE esi_cache;
