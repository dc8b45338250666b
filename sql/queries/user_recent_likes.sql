-- The user's most recent positive items (not quarantined), most recent first: the user text and history ids.
SELECT x.item_id, it.title
FROM interactions x
JOIN items it ON it.id = x.item_id
WHERE x.user_id = :user_id AND x.label = 1
  AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.interaction_id = x.id)
ORDER BY x.occurred_at DESC, x.id DESC
LIMIT :history_len
