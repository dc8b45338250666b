-- The user's most recent positive items (not quarantined), most recent first: the user text and history ids.
SELECT x.item_id, it.title
FROM clean_interactions x
JOIN items it ON it.id = x.item_id
WHERE x.user_id = :user_id AND x.label = 1
ORDER BY x.occurred_at DESC, x.id DESC
LIMIT :history_len
