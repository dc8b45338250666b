-- For each (row, user, item, time) and each of the item's categories (items.category, comma-separated): how many
-- earlier interactions with a valid label the user had with items of that category, and how many were positive.
-- Strictly earlier, so a row never sees its own label. The users' histories are read once and split into
-- categories once; rows then join them on (user, category).
WITH r AS (
    SELECT * FROM unnest(CAST(:row_ids AS bigint[]), CAST(:user_ids AS bigint[]), CAST(:item_ids AS bigint[]),
                         CAST(:times AS timestamptz[])) AS r(row_id, user_id, item_id, at)
), wanted AS (
    SELECT DISTINCT r.row_id, r.user_id, r.at, c.category
    FROM r JOIN items i ON i.id = r.item_id
    CROSS JOIN LATERAL regexp_split_to_table(btrim(i.category), '\s*,\s*') AS c(category)
    WHERE c.category <> ''
), history AS (
    SELECT x.user_id, x.occurred_at, x.label, c.category
    FROM clean_interactions x JOIN items i ON i.id = x.item_id
    CROSS JOIN LATERAL regexp_split_to_table(btrim(i.category), '\s*,\s*') AS c(category)
    WHERE x.user_id IN (SELECT DISTINCT user_id FROM r) AND x.label IN (0, 1)
      AND x.occurred_at < (SELECT max(at) FROM r) AND c.category <> ''
      AND x.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
)
SELECT w.row_id, w.category, count(h.label) AS n, count(h.label) FILTER (WHERE h.label = 1) AS pos
FROM wanted w
LEFT JOIN history h ON h.user_id = w.user_id AND h.category = w.category AND h.occurred_at < w.at
GROUP BY w.row_id, w.category
