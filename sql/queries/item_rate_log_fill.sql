-- Log each interaction's item like-rate at its own time (migration 0015; item_rate_before, migration 0016) for
-- every clean interaction with a valid label of the :user_ids before :until that has none yet (this cycle's
-- :exclude_ids, about to be quarantined, left out). The (user_id, occurred_at) and (item_id, occurred_at) indexes
-- serve it; concurrent fills of the same rows write each once.
INSERT INTO item_rate_log (interaction_id, item_rate)
SELECT c.id, item_rate_before(c.item_id, c.occurred_at, :weight, CAST(:exclude_ids AS bigint[]))
FROM clean_interactions c
WHERE c.user_id = ANY(CAST(:user_ids AS bigint[])) AND c.occurred_at < :until AND c.label IN (0, 1)
  AND c.id <> ALL(CAST(:exclude_ids AS bigint[]))
  AND NOT EXISTS (SELECT 1 FROM item_rate_log l WHERE l.interaction_id = c.id)
ON CONFLICT (interaction_id) DO NOTHING
