-- U002__create_user_preferences.sql
-- Description: undo V002: create user_preferences, the seed's reviewed UserPreferences model

DROP INDEX idx_user_preferences_user_id;
DROP TABLE user_preferences;
