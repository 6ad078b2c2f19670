-- U001__create_users.sql
-- Description: undo V001: user profiles (Prisma model User)

DROP TABLE users;
