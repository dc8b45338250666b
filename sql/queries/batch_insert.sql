INSERT INTO ingest_batches (consumer, cycle_id, from_txid, from_id, to_txid, to_id, row_count, clean_count,
                            quarantined_count, min_occurred_at, max_occurred_at, status, reject_reason, reason_counts)
VALUES (:consumer, :cycle_id, CAST(:from_txid AS xid8), :from_id, CAST(:to_txid AS xid8), :to_id, :row_count,
        :clean_count, :quarantined_count, :min_occurred_at, :max_occurred_at, :status, :reject_reason,
        CAST(:reason_counts AS jsonb))
RETURNING id
