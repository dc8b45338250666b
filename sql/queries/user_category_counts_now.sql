-- The user's interactions and positives so far per category (items.category, comma-separated): the
-- category-aware user rate at serving time.
SELECT c.category, count(*) AS n, count(*) FILTER (WHERE x.label = 1) AS pos
FROM clean_interactions x JOIN items i ON i.id = x.item_id
CROSS JOIN LATERAL regexp_split_to_table(btrim(i.category), '\s*,\s*') AS c(category)
WHERE x.user_id = :user_id AND x.label IN (0, 1) AND x.occurred_at <= now() AND c.category <> ''
GROUP BY c.category
