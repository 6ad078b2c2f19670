-- V004__create_pilot_ship_history.sql
-- Description: Create pilot_ship_history, the ships each pilot flew with kills and losses
-- Rollback: U004__create_pilot_ship_history.sql

CREATE TABLE pilot_ship_history (
  character_id BIGINT NOT NULL,
  ship_type_id BIGINT NOT NULL,
  ship_type_name TEXT NOT NULL,    -- denormalized
  first_seen TIMESTAMPTZ NOT NULL,
  last_seen TIMESTAMPTZ NOT NULL,
  kill_count BIGINT NOT NULL,
  loss_count BIGINT NOT NULL,
  PRIMARY KEY (character_id, ship_type_id)
);

CREATE INDEX idx_pilot_ship_history_ship_type_id ON pilot_ship_history (ship_type_id);
