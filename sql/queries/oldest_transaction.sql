-- The running transaction with the oldest transaction id: it holds pg_snapshot_xmin, the reader's horizon.
SELECT pid, usename, application_name, CAST(client_addr AS text) AS client_addr, state,
       EXTRACT(EPOCH FROM now() - xact_start) AS transaction_age_s, left(query, 200) AS query
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY age(backend_xid) DESC
LIMIT 1
