-- For each (row, user, time): of the user's last :recent_events interactions with a valid label strictly before
-- the row's time (quarantined rows and this cycle's :exclude_ids left out; ties in time broken by id), how many
-- there were and how many were positive. The (user_id, occurred_at) INCLUDE (label) index serves it.
SELECT r.row_id, count(x.label) AS n, count(x.label) FILTER (WHERE x.label = 1) AS pos
FROM unnest(CAST(:row_ids AS bigint[]), CAST(:user_ids AS bigint[]), CAST(:times AS timestamptz[]))
     AS r(row_id, user_id, at)
LEFT JOIN LATERAL (
    SELECT c.label FROM clean_interactions c
    WHERE c.user_id = r.user_id AND c.occurred_at < r.at AND c.label IN (0, 1)
      AND c.id NOT IN (SELECT unnest(CAST(:exclude_ids AS bigint[])))
    ORDER BY c.occurred_at DESC, c.id DESC
    LIMIT :recent_events
) x ON true
GROUP BY r.row_id
