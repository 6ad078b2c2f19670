-- U001__create_samples.sql
-- Description: undo V001: create metric samples

DROP INDEX idx_samples_name_recorded_at;
DROP TABLE samples;
