-- The oldest rows waiting to be trained on, as interaction rows.
SELECT x.id, x.user_id, x.item_id, x.event_type, x.label, x.dwell_ms, x.occurred_at
FROM training_backlog b
JOIN interactions x ON x.id = b.interaction_id
WHERE b.consumer = :consumer
ORDER BY x.occurred_at, x.id
LIMIT :max_rows
