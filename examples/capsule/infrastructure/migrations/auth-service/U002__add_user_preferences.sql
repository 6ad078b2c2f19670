-- U002__add_user_preferences.sql
-- Description: Undo V002: drop the user preferences table

DROP INDEX idx_user_preferences_user_id;
DROP TABLE user_preferences;
