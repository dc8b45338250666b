SELECT count(*) FROM interactions
WHERE (txid, id) > (CAST(:from_txid AS xid8), :from_id) AND (txid, id) <= (CAST(:to_txid AS xid8), :to_id)
