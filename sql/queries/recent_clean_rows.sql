-- The newest clean rows the consumer has already taken (never quarantined, not waiting in the backlog): the
-- window a rebase trains on, next to the batch.
SELECT x.id, x.user_id, x.item_id, x.event_type, x.label, x.dwell_ms, x.occurred_at
FROM interactions x
WHERE (x.txid, x.id) <= (CAST(:last_txid AS xid8), :last_id)
  AND x.label IN (0, 1)
  -- the predicate of view clean_interactions (migration 0011), and not waiting in the backlog
  AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.interaction_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM training_backlog b WHERE b.consumer = :consumer AND b.interaction_id = x.id)
ORDER BY x.occurred_at DESC, x.id DESC
LIMIT :max_rows
