-- Side features of the model: the user's and the item's earlier interactions and positives, counted at each
-- event's time. Covering indexes let these counts run as index-only scans.
CREATE INDEX interactions_user_time_label ON interactions (user_id, occurred_at) INCLUDE (label);
DROP INDEX interactions_user_time;
CREATE INDEX interactions_item_time_label ON interactions (item_id, occurred_at) INCLUDE (label);
DROP INDEX interactions_item_time;

-- The probe set keeps the side features its pairs had when it was taken (neutral for older probe sets).
ALTER TABLE probe_set
    ADD COLUMN user_rate  DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    ADD COLUMN item_rate  DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    ADD COLUMN user_log_n DOUBLE PRECISION NOT NULL DEFAULT 0,
    ADD COLUMN item_log_n DOUBLE PRECISION NOT NULL DEFAULT 0;
