-- U004__create_pilot_ship_history.sql
-- Description: undo V004: ships each pilot flew, with kills and losses

DROP TABLE pilot_ship_history;
