-- Visible rows past the cursor that the reader may not take yet: an older transaction is still running.
SELECT count(*) FROM interactions
WHERE (txid, id) > (CAST(:last_txid AS xid8), :last_id)
  AND txid >= (SELECT horizon FROM read_horizon)
