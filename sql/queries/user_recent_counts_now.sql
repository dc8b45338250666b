-- The user's last :recent_events interactions with a valid label so far (quarantined rows left out; ties in time
-- broken by id): how many and how many positive; and the same of the last :session_events of them. The
-- serving-time twin of user_recent_counts.sql.
SELECT count(x.label) FILTER (WHERE x.k <= :recent_events) AS n,
       count(x.label) FILTER (WHERE x.label = 1 AND x.k <= :recent_events) AS pos,
       count(x.label) FILTER (WHERE x.k <= :session_events) AS session_n,
       count(x.label) FILTER (WHERE x.label = 1 AND x.k <= :session_events) AS session_pos
FROM (SELECT label, row_number() OVER (ORDER BY occurred_at DESC, id DESC) AS k FROM clean_interactions
      WHERE user_id = :user_id AND label IN (0, 1) AND occurred_at <= now()
      ORDER BY occurred_at DESC, id DESC LIMIT GREATEST(:recent_events, :session_events)) x
