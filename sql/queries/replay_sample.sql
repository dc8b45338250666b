-- A random sample of older clean rows (already consumed, never quarantined, not waiting in the backlog)
-- to mix into training. The Bernoulli sample over-draws about threefold; ordering it by a seeded hash before
-- LIMIT keeps the draw uniform over the whole history (a bare LIMIT keeps the rows stored first, the oldest),
-- and the caller changes the seed every cycle, so cycles replay different rows.
SELECT x.id, x.user_id, x.item_id, x.event_type, x.label, x.dwell_ms, x.occurred_at
FROM interactions x TABLESAMPLE BERNOULLI (:percent) REPEATABLE (:seed)
WHERE (x.txid, x.id) <= (CAST(:last_txid AS xid8), :last_id)
  AND x.label IN (0, 1)
  -- The predicate of view clean_interactions (migration 0011), written out: a view cannot be sampled.
  AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.interaction_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM training_backlog b WHERE b.consumer = :consumer AND b.interaction_id = x.id)
ORDER BY md5(CAST(x.id AS text) || '/' || CAST(:seed AS text))
LIMIT :max_rows
