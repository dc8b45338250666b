-- Rows past the cursor whose writing transaction is older than every transaction still in progress:
-- such a transaction has committed or aborted, so no row at or below this point can appear later.
-- ORDER BY uses the qualified column: a bare "txid" would sort by the text-cast output column.
SELECT i.id, i.user_id, i.item_id, i.event_type, i.label, i.dwell_ms, i.occurred_at, i.inserted_at,
       CAST(i.txid AS text) AS txid
FROM interactions i
WHERE (i.txid, i.id) > (CAST(:last_txid AS xid8), :last_id)
  AND i.txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY i.txid, i.id
LIMIT :max_rows
