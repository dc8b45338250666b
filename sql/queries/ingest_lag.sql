-- What is still waiting past a cursor: visible rows, and how long the oldest has waited.
SELECT count(*) AS rows_behind,
       COALESCE(EXTRACT(EPOCH FROM now() - min(inserted_at)), 0) AS seconds_behind
FROM interactions
WHERE (txid, id) > (CAST(:last_txid AS xid8), :last_id)
