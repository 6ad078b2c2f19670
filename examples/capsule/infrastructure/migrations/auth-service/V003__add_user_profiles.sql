-- V003__add_user_profiles.sql
-- Description: Add user profiles table, one public profile per user
-- Rollback: DROP TABLE user_profiles;

-- The foreign key to users locks it while the table is created: give up
-- rather than queue behind a long transaction.
SET lock_timeout = '2s';
SET statement_timeout = '5min';

-- silo:ignore prefer-identity, prefer-bigint-over-int -- ids stay SERIAL and INTEGER like users.id (V001) until one migration widens them all
CREATE TABLE user_profiles (
    id SERIAL PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    display_name VARCHAR(255),
    bio TEXT,
    avatar_url VARCHAR(500),
    website_url VARCHAR(500),
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE UNIQUE INDEX idx_user_profiles_user_id ON user_profiles(user_id);

CREATE TRIGGER update_user_profiles_updated_at 
    BEFORE UPDATE ON user_profiles 
    FOR EACH ROW 
    EXECUTE FUNCTION update_updated_at_column();
