-- pgbench script for bench/gateway.sh: the gateway's single-row write
-- transaction, one update by primary key (pgbench -D rows=N).
\set id random(1, :rows)
\set level random(1, 20)
BEGIN;
UPDATE characters SET level = :level WHERE id = :id;
COMMIT;
