-- U002__create_esi_cache.sql
-- Description: undo V002: create esi_cache, cached responses of EVE's ESI API

DROP TABLE esi_cache;
