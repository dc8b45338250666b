SELECT (SELECT count(*) FROM interactions) AS interactions,
       (SELECT COALESCE(sum(row_count), 0) FROM ingest_batches WHERE consumer = :consumer) AS consumed,
       (SELECT count(*) FROM quarantine WHERE consumer = :consumer) AS quarantined,
       (SELECT count(*) FROM ingest_batches WHERE consumer = :consumer AND status = 'rejected') AS rejected_batches
