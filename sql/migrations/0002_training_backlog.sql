-- Clean rows that have not been trained on yet: a batch too small to train, and each cycle's held-out
-- newest slice. The next cycle that trains takes them (oldest first) and removes them from this queue;
-- the interactions themselves are never touched.
CREATE TABLE training_backlog (
    consumer       TEXT NOT NULL,
    interaction_id BIGINT NOT NULL,
    reason         TEXT NOT NULL CHECK (reason IN ('below_minimum', 'held_out')),
    cycle_id       BIGINT NOT NULL REFERENCES update_cycles (id),
    queued_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, interaction_id)
);
