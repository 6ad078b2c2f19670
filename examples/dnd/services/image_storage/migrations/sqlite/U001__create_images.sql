-- U001__create_images.sql
-- Description: undo V001: create image records

DROP INDEX idx_images_owner_service_owner_ref;
DROP INDEX idx_images_object_key;
DROP TABLE images;
