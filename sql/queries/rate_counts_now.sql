-- The user's and each candidate item's interactions and positives so far (quarantined rows left out): side
-- features at serving time.
SELECT it.item_id, u.n AS user_n, u.pos AS user_pos, it.n AS item_n, it.pos AS item_pos
FROM (SELECT count(*) AS n, count(*) FILTER (WHERE label = 1) AS pos
      FROM clean_interactions WHERE user_id = :user_id AND label IN (0, 1) AND occurred_at <= now()) u
CROSS JOIN LATERAL (
    SELECT i.item_id, count(x.*) AS n, count(x.*) FILTER (WHERE x.label = 1) AS pos
    FROM unnest(CAST(:item_ids AS bigint[])) AS i(item_id)
    LEFT JOIN clean_interactions x ON x.item_id = i.item_id AND x.label IN (0, 1) AND x.occurred_at <= now()
    GROUP BY i.item_id
) it
