-- U001__create_items.sql
-- Description: undo V001: create the item and spell catalog

DROP INDEX idx_spells_name;
DROP TABLE spells;
DROP INDEX idx_items_name;
DROP TABLE items;
