SELECT q.interaction_id, q.batch_id, q.reasons, q.row_data, q.created_at
FROM quarantine q
WHERE q.consumer = :consumer
  AND (CAST(:reason AS text) IS NULL OR CAST(:reason AS text) = ANY(q.reasons))
  AND (CAST(:batch_id AS bigint) IS NULL OR q.batch_id = CAST(:batch_id AS bigint))
ORDER BY q.interaction_id DESC
LIMIT :limit
