-- U002__create_sessions.sql
-- Description: undo V002: active sessions

DROP TABLE sessions;
