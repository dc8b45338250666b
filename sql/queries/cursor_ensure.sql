INSERT INTO ingest_cursor (consumer) VALUES (:consumer) ON CONFLICT (consumer) DO NOTHING
