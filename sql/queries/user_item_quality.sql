-- For each (row, user, time): over the user's clean interactions with a valid label strictly before the row's time
-- (this cycle's :exclude_ids left out) whose item rate is logged (item_rate_log_fill.sql), how many there are and
-- the sum of those item rates: the inputs of features.item_quality.
SELECT r.row_id, count(l.item_rate) AS n, COALESCE(sum(l.item_rate), 0) AS total
FROM unnest(CAST(:row_ids AS bigint[]), CAST(:user_ids AS bigint[]), CAST(:times AS timestamptz[]))
     AS r(row_id, user_id, at)
LEFT JOIN clean_interactions c
       ON c.user_id = r.user_id AND c.occurred_at < r.at AND c.label IN (0, 1)
      AND c.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
LEFT JOIN item_rate_log l ON l.interaction_id = c.id
GROUP BY r.row_id
