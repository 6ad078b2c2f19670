-- U003__add_user_profiles.sql
-- Description: undo V003: drop user profiles

DROP TABLE user_profiles;
