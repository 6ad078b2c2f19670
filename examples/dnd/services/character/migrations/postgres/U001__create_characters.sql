-- U001__create_characters.sql
-- Description: undo V001: create characters and their inventories

DROP INDEX idx_inventories_item_id;
DROP INDEX idx_inventories_character_id_item_id;
DROP TABLE inventories;
DROP INDEX idx_characters_player_id;
DROP TABLE characters;
