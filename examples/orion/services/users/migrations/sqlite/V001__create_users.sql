-- V001__create_users.sql
-- Description: user profiles (Prisma model User)
-- Rollback: U001__create_users.sql

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  avatar TEXT,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TEXT NOT NULL
);

CREATE INDEX idx_users_email ON users (email);
