-- For each (row, user, time): the user's most recent positive items strictly before that time, most recent
-- first, leaving out quarantined rows: their titles (the user text) and their ids (the learned item signal).
SELECT r.row_id, COALESCE(h.titles, CAST('{}' AS text[])) AS titles,
       COALESCE(h.item_ids, CAST('{}' AS bigint[])) AS item_ids
FROM unnest(CAST(:row_ids AS bigint[]), CAST(:user_ids AS bigint[]), CAST(:times AS timestamptz[]))
     AS r(row_id, user_id, at)
LEFT JOIN LATERAL (
    SELECT array_agg(t.title ORDER BY t.occurred_at DESC, t.id DESC) AS titles,
           array_agg(t.item_id ORDER BY t.occurred_at DESC, t.id DESC) AS item_ids
    FROM (
        SELECT x.id, x.occurred_at, x.item_id, it.title
        FROM clean_interactions x
        JOIN items it ON it.id = x.item_id
        WHERE x.user_id = r.user_id
          AND x.label = 1
          AND x.occurred_at < r.at
          AND x.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
        ORDER BY x.occurred_at DESC, x.id DESC
        LIMIT :history_len
    ) t
) h ON true
