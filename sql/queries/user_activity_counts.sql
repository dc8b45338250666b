-- Interactions per user in a trailing window: the 'user activity' drift feature.
SELECT user_id AS key, count(*) AS n FROM clean_interactions x
WHERE x.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
  AND user_id = ANY(CAST(:ids AS bigint[])) AND occurred_at >= :since AND occurred_at <= :until
GROUP BY user_id
