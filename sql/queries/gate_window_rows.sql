-- The held-out rows of the consumer's newest :cycles earlier cycles that still wait in the training backlog. With
-- this batch's held-out rows they are the rows the publish gate compares candidate and champion on
-- (FRESHREC_GATE_WINDOW_CYCLES): neither model trained on them, and backlog_rows.sql keeps them out of training
-- until newer cycles' held-out rows push them out of the window. champion_score / scored_by: the score the champion
-- gave the row and its version (0013), so that an unchanged champion does not score it again.
WITH window_cycles AS (
    SELECT DISTINCT cycle_id FROM training_backlog
    WHERE consumer = :consumer AND reason = 'held_out'
    ORDER BY cycle_id DESC
    LIMIT :cycles
)
SELECT x.id, x.user_id, x.item_id, x.event_type, x.label, x.dwell_ms, x.occurred_at,
       b.champion_score, b.scored_by
FROM training_backlog b
JOIN interactions x ON x.id = b.interaction_id
WHERE b.consumer = :consumer AND b.reason = 'held_out' AND b.cycle_id IN (SELECT cycle_id FROM window_cycles)
ORDER BY x.occurred_at, x.id
