-- The batches that the backlog rows trained on now came from (their cycles' batches).
SELECT DISTINCT ib.id FROM training_backlog tb JOIN ingest_batches ib ON ib.cycle_id = tb.cycle_id
WHERE tb.consumer = :consumer AND tb.interaction_id = ANY(CAST(:ids AS bigint[]))
