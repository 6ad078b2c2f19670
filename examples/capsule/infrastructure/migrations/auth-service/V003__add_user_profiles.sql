-- V003__add_user_profiles.sql
-- Description: Add user_profiles, one public profile per user
-- Rollback: U003__add_user_profiles.sql

-- The new table's foreign key takes a SHARE ROW EXCLUSIVE lock on the
-- table it references: give up rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

CREATE TABLE user_profiles (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    display_name TEXT CHECK (char_length(display_name) <= 255),
    bio TEXT,
    avatar_url TEXT,
    website_url TEXT,
    timezone TEXT DEFAULT 'UTC' CHECK (char_length(timezone) <= 50),
    language TEXT DEFAULT 'en' CHECK (char_length(language) <= 5),
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- One profile per user.
CREATE UNIQUE INDEX idx_user_profiles_user_id ON user_profiles(user_id);

-- Keep updated_at current with the function V001 created.
CREATE TRIGGER update_user_profiles_updated_at
    BEFORE UPDATE ON user_profiles
    FOR EACH ROW
    EXECUTE FUNCTION update_updated_at_column();
