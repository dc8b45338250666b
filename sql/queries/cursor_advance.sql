UPDATE ingest_cursor
SET last_txid = CAST(:to_txid AS xid8), last_id = :to_id, updated_at = now()
WHERE consumer = :consumer AND last_txid = CAST(:from_txid AS xid8) AND last_id = :from_id
