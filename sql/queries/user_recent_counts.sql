-- For each (row, user, time): of the user's last :recent_events interactions with a valid label strictly before
-- the row's time (quarantined rows and this cycle's :exclude_ids left out; ties in time broken by id), how many
-- there were and how many were positive; and the same of the last :session_events of them. One pass for both
-- windows; the (user_id, occurred_at) INCLUDE (label) index serves it.
SELECT r.row_id, count(x.label) FILTER (WHERE x.k <= :recent_events) AS n,
       count(x.label) FILTER (WHERE x.label = 1 AND x.k <= :recent_events) AS pos,
       count(x.label) FILTER (WHERE x.k <= :session_events) AS session_n,
       count(x.label) FILTER (WHERE x.label = 1 AND x.k <= :session_events) AS session_pos
FROM unnest(CAST(:row_ids AS bigint[]), CAST(:user_ids AS bigint[]), CAST(:times AS timestamptz[]))
     AS r(row_id, user_id, at)
LEFT JOIN LATERAL (
    SELECT c.label, row_number() OVER (ORDER BY c.occurred_at DESC, c.id DESC) AS k FROM clean_interactions c
    WHERE c.user_id = r.user_id AND c.occurred_at < r.at AND c.label IN (0, 1)
      AND c.id <> ALL(CAST(:exclude_ids AS bigint[]))
    ORDER BY c.occurred_at DESC, c.id DESC
    LIMIT GREATEST(:recent_events, :session_events)
) x ON true
GROUP BY r.row_id
