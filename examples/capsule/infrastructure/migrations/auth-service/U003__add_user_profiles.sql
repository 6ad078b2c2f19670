-- U003__add_user_profiles.sql
-- Description: Undo V003: drop the user profiles table
-- The trigger function belongs to V001 and stays.

DROP TRIGGER update_user_profiles_updated_at ON user_profiles;
DROP INDEX idx_user_profiles_user_id;
DROP TABLE user_profiles;
