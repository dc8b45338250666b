SELECT reason, count(*) AS row_count, max(q.created_at) AS last_seen
FROM quarantine q, unnest(q.reasons) AS reason
WHERE q.consumer = :consumer
GROUP BY reason
ORDER BY row_count DESC, reason
