SELECT CAST(last_txid AS text) AS last_txid, last_id FROM ingest_cursor WHERE consumer = :consumer
