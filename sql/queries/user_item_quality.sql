-- For each (row, user, time): over the user's clean interactions with a valid label strictly before the row's time
-- (this cycle's :exclude_ids left out), how many there are and the sum of their items' rates at their own time:
-- the inputs of features.item_quality. The rates come from item_rate_log (item_rate_log_fill.sql); a row not
-- logged yet is counted the same way here (item_rate_before, evaluated only for those).
SELECT r.row_id, count(c.id) AS n,
       COALESCE(sum(COALESCE(l.item_rate, item_rate_before(c.item_id, c.occurred_at, :weight,
                                                           CAST(:exclude_ids AS bigint[]))))
                FILTER (WHERE c.id IS NOT NULL), 0) AS total
FROM unnest(CAST(:row_ids AS bigint[]), CAST(:user_ids AS bigint[]), CAST(:times AS timestamptz[]))
     AS r(row_id, user_id, at)
LEFT JOIN clean_interactions c
       ON c.user_id = r.user_id AND c.occurred_at < r.at AND c.label IN (0, 1)
      AND c.id <> ALL(CAST(:exclude_ids AS bigint[]))
LEFT JOIN item_rate_log l ON l.interaction_id = c.id
GROUP BY r.row_id
