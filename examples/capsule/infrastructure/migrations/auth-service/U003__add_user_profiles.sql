-- U003__add_user_profiles.sql
-- Description: undo V003: add user_profiles, one public profile per user
-- The trigger function belongs to V001 and stays.

DROP TRIGGER update_user_profiles_updated_at ON user_profiles;
DROP INDEX idx_user_profiles_user_id;
DROP TABLE user_profiles;
