-- Fresh rows that a cycle's training budget did not reach join the training backlog as 'not_trained':
-- the next cycle trains them first (freshrec.training.batch_order), so no clean row is silently unseen.
ALTER TABLE training_backlog DROP CONSTRAINT IF EXISTS training_backlog_reason_check;
ALTER TABLE training_backlog ADD CONSTRAINT training_backlog_reason_check
    CHECK (reason IN ('below_minimum', 'held_out', 'not_trained'));
