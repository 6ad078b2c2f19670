-- pgbench script for bench/gateway.sh: the statement the gateway's read
-- stands for, a row of characters by primary key (pgbench -D rows=N).
\set id random(1, :rows)
SELECT id, name, class, level, player_id, created_at, updated_at FROM characters WHERE id = :id;
