-- V001__create_users.sql
-- Description: Create users, the seed's Prisma model User
-- Rollback: U001__create_users.sql

-- Prisma:  model User { id String @id @default(uuid()) @db.Uuid
--                       email String @unique  name String  avatar String?
--                       createdAt DateTime @default(now())
--                       updatedAt DateTime @updatedAt  @@index([email]) }
-- @default(uuid()) and @updatedAt are filled in by the application (Prisma
-- does it client-side), so id and updated_at have no database default.
CREATE TABLE users (
  id UUID PRIMARY KEY,
  email TEXT NOT NULL,
  name TEXT NOT NULL,
  avatar TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL
);

-- @unique and @@index([email]) together: one unique index, named by the
-- seed's convention idx_<table>_<columns>.
CREATE UNIQUE INDEX idx_users_email ON users (email);
