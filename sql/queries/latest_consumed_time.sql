SELECT max(max_occurred_at) FROM ingest_batches WHERE consumer = :consumer
