SELECT count(*) FROM interactions WHERE (txid, id) <= (CAST(:last_txid AS xid8), :last_id)
