-- U002__create_user_preferences.sql
-- Description: undo V002: preferences kept apart from users (seed 002 review example)

DROP TABLE user_preferences;
