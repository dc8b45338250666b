-- The newest rows waiting to be trained on, as interaction rows with why they wait (a budget that cannot take them
-- all trains the newest; the oldest expire past FRESHREC_MAX_BACKLOG_ROWS: backlog_expire.sql), less :exclude_ids
-- (the held-out rows still in the publish gate's window, gate_window_rows.sql: the gate judges on them untrained).
SELECT x.id, x.user_id, x.item_id, x.event_type, x.label, x.dwell_ms, x.occurred_at, b.reason,
       b.champion_score, b.scored_by
FROM training_backlog b
JOIN interactions x ON x.id = b.interaction_id
WHERE b.consumer = :consumer
  AND b.interaction_id <> ALL(CAST(:exclude_ids AS bigint[]))
ORDER BY x.occurred_at DESC, x.id DESC
LIMIT :max_rows
