-- The user's clean interactions with a valid label so far: how many and the sum of their items' rates at their own
-- time. The serving-time twin of user_item_quality.sql: read from item_rate_log, counted here (item_rate_before)
-- for rows no cycle has logged yet (serving does not write).
SELECT count(*) AS n,
       COALESCE(sum(COALESCE(l.item_rate, item_rate_before(c.item_id, c.occurred_at, :weight))), 0) AS total
FROM clean_interactions c LEFT JOIN item_rate_log l ON l.interaction_id = c.id
WHERE c.user_id = :user_id AND c.label IN (0, 1) AND c.occurred_at <= now()
