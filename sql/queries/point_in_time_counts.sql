-- For each (row, user, item, time): how many earlier interactions with a valid label the user and the item
-- had (quarantined rows left out), and how many of them were positive. Strictly earlier, so a row never sees its own label.
SELECT r.row_id, u.n AS user_n, u.pos AS user_pos, i.n AS item_n, i.pos AS item_pos
FROM unnest(CAST(:row_ids AS bigint[]), CAST(:user_ids AS bigint[]), CAST(:item_ids AS bigint[]),
            CAST(:times AS timestamptz[])) AS r(row_id, user_id, item_id, at)
CROSS JOIN LATERAL (
    SELECT count(*) AS n, count(*) FILTER (WHERE x.label = 1) AS pos
    FROM clean_interactions x WHERE x.user_id = r.user_id AND x.occurred_at < r.at AND x.label IN (0, 1)
      AND x.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
) u
CROSS JOIN LATERAL (
    SELECT count(*) AS n, count(*) FILTER (WHERE x.label = 1) AS pos
    FROM clean_interactions x WHERE x.item_id = r.item_id AND x.occurred_at < r.at AND x.label IN (0, 1)
      AND x.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
) i
