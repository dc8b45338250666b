-- Rows past the cursor whose writing transaction lies below the read horizon (view read_horizon, migration
-- 0011): every transaction of this database below it has committed or aborted, so no row at or below this
-- point can appear later. ORDER BY uses the qualified column: a bare "txid" would sort by the text output.
-- No single row may break the parse (freshrec.ingest.parse_interactions_csv): text is cut to
-- :max_field_chars + 1 characters (still detectably too long), and times leave as microseconds since the
-- epoch (no time-zone or BC formatting), clamped to 0001-01-01 .. 9999-12-31 so that 'infinity' and
-- '-infinity' stay representable; validation quarantines them as future_timestamp / implausible_timestamp.
-- GREATEST and LEAST skip NULLs, hence the CASE: a NULL time stays NULL (null_occurred_at).
SELECT i.id, i.user_id, i.item_id, left(i.event_type, :max_field_chars + 1) AS event_type, i.label, i.dwell_ms,
       CASE WHEN i.occurred_at IS NOT NULL THEN
           CAST(EXTRACT(EPOCH FROM LEAST(GREATEST(i.occurred_at, TIMESTAMPTZ '0001-01-01 00:00:00+00'),
                                         TIMESTAMPTZ '9999-12-31 23:59:59.999999+00')) * 1000000 AS bigint)
       END AS occurred_at,
       CASE WHEN i.inserted_at IS NOT NULL THEN
           CAST(EXTRACT(EPOCH FROM LEAST(GREATEST(i.inserted_at, TIMESTAMPTZ '0001-01-01 00:00:00+00'),
                                         TIMESTAMPTZ '9999-12-31 23:59:59.999999+00')) * 1000000 AS bigint)
       END AS inserted_at,
       CAST(i.txid AS text) AS txid
FROM interactions i
WHERE (i.txid, i.id) > (CAST(:last_txid AS xid8), :last_id)
  AND i.txid < (SELECT horizon FROM read_horizon)
ORDER BY i.txid, i.id
LIMIT :max_rows
