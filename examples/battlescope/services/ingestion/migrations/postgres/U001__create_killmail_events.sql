-- U001__create_killmail_events.sql
-- Description: undo V001: raw killmails as fetched from zKillboard

DROP TABLE killmail_events;
