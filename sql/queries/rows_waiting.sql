-- Rows waiting past a cursor, counted only up to :cap (the update trigger asks "at least cap?", cheaply).
SELECT count(*) FROM (
    SELECT 1 FROM interactions WHERE (txid, id) > (CAST(:last_txid AS xid8), :last_id) LIMIT :cap
) waiting
