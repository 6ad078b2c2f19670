-- U002__create_esi_cache_entries.sql
-- Description: undo V002: create esi_cache_entries, cached responses of EVE's ESI API

DROP TABLE esi_cache_entries;
