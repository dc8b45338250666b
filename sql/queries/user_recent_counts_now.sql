-- The user's last :recent_events interactions with a valid label so far (quarantined rows left out; ties in time
-- broken by id): how many and how many positive. The serving-time twin of user_recent_counts.sql.
SELECT count(x.label) AS n, count(x.label) FILTER (WHERE x.label = 1) AS pos
FROM (SELECT label FROM clean_interactions
      WHERE user_id = :user_id AND label IN (0, 1) AND occurred_at <= now()
      ORDER BY occurred_at DESC, id DESC LIMIT :recent_events) x
