-- U004__create_pilot_ship_history.sql
-- Description: undo V004: create pilot_ship_history, the ships each pilot flew with kills and losses

DROP INDEX idx_pilot_ship_history_ship_type_id;
DROP TABLE pilot_ship_history;
