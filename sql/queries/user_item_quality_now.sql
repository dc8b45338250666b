-- The user's clean interactions so far with a logged item rate: how many and the sum of those rates. The
-- serving-time twin of user_item_quality.sql (interactions no cycle has logged yet are not counted).
SELECT count(l.item_rate) AS n, COALESCE(sum(l.item_rate), 0) AS total
FROM clean_interactions c JOIN item_rate_log l ON l.interaction_id = c.id
WHERE c.user_id = :user_id AND c.label IN (0, 1) AND c.occurred_at <= now()
