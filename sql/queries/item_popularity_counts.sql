-- Interactions per item in a trailing window: the 'item popularity' drift feature.
SELECT item_id AS key, count(*) AS n FROM clean_interactions x
WHERE x.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
  AND item_id = ANY(CAST(:ids AS bigint[])) AND occurred_at >= :since AND occurred_at <= :until
GROUP BY item_id
