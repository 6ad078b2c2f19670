-- U001__create_killmail_events.sql
-- Description: undo V001: create killmail_events, raw killmails as fetched from zKillboard

DROP INDEX idx_killmail_events_battle_id;
DROP INDEX idx_killmail_events_victim_alliance_id;
DROP INDEX idx_killmail_events_system_id;
DROP TABLE killmail_events;
