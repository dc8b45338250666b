-- Interactions per user in a trailing window: the 'user activity' drift feature.
SELECT user_id AS key, count(*) AS n FROM clean_interactions
WHERE user_id = ANY(CAST(:ids AS bigint[])) AND occurred_at >= :since AND occurred_at <= :until
GROUP BY user_id
