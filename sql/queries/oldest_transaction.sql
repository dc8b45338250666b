-- The running transaction of this database with the oldest transaction id: it holds the reader's horizon
-- (view read_horizon). Transactions of other databases never hold it.
SELECT pid, usename, application_name, CAST(client_addr AS text) AS client_addr, state,
       EXTRACT(EPOCH FROM now() - xact_start) AS transaction_age_s, left(query, 200) AS query
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
  AND datid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY age(backend_xid) DESC
LIMIT 1
