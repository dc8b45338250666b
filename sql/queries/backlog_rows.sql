-- The newest rows waiting to be trained on, as interaction rows (a budget that cannot take them all trains the
-- newest; the oldest expire past FRESHREC_MAX_BACKLOG_ROWS: backlog_expire.sql). Held-out rows still in the
-- publish gate's window (gate_window_rows.sql, :window_cycles earlier cycles) wait: the gate judges on them.
WITH window_cycles AS (
    SELECT DISTINCT cycle_id FROM training_backlog
    WHERE consumer = :consumer AND reason = 'held_out'
    ORDER BY cycle_id DESC
    LIMIT :window_cycles
)
SELECT x.id, x.user_id, x.item_id, x.event_type, x.label, x.dwell_ms, x.occurred_at
FROM training_backlog b
JOIN interactions x ON x.id = b.interaction_id
WHERE b.consumer = :consumer
  AND NOT (b.reason = 'held_out' AND b.cycle_id IN (SELECT cycle_id FROM window_cycles))
ORDER BY x.occurred_at DESC, x.id DESC
LIMIT :max_rows
