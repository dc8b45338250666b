-- Log each interaction's item like-rate at its own time (migration 0015) for every clean interaction with a
-- valid label of the :user_ids before :until that has none yet (this cycle's :exclude_ids, about to be
-- quarantined, left out): how many clean interactions with a valid label the item had strictly before it and how
-- many were positive, shrunk towards 0.5 by :weight pseudo-events (features.shrunk_rate). The (user_id,
-- occurred_at) and (item_id, occurred_at) indexes serve it; concurrent fills of the same rows write each once.
INSERT INTO item_rate_log (interaction_id, item_rate)
SELECT c.id, (i.pos + :weight * 0.5) / (i.n + :weight)
FROM clean_interactions c
CROSS JOIN LATERAL (
    SELECT count(*) AS n, count(*) FILTER (WHERE x.label = 1) AS pos
    FROM clean_interactions x WHERE x.item_id = c.item_id AND x.occurred_at < c.occurred_at AND x.label IN (0, 1)
      AND x.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
) i
WHERE c.user_id = ANY(CAST(:user_ids AS bigint[])) AND c.occurred_at < :until AND c.label IN (0, 1)
  AND c.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
  AND NOT EXISTS (SELECT 1 FROM item_rate_log l WHERE l.interaction_id = c.id)
ON CONFLICT (interaction_id) DO NOTHING
