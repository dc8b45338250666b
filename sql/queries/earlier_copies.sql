-- For rows of a new batch: the gap to the closest already-consumed row with the same user, item and event
-- within the duplicate window (a producer's retry that landed in a later batch).
SELECT b.row_id, min(abs(EXTRACT(EPOCH FROM (x.occurred_at - b.at)))) AS gap_s
FROM unnest(CAST(:row_ids AS bigint[]), CAST(:user_ids AS bigint[]), CAST(:item_ids AS bigint[]),
            CAST(:event_types AS text[]), CAST(:times AS timestamptz[])) AS b(row_id, user_id, item_id, event_type, at)
JOIN interactions x
  ON x.user_id = b.user_id
 AND x.occurred_at BETWEEN b.at - make_interval(secs => :window_s) AND b.at + make_interval(secs => :window_s)
 AND x.item_id = b.item_id
 AND x.event_type = b.event_type
WHERE (x.txid, x.id) <= (CAST(:last_txid AS xid8), :last_id)
GROUP BY b.row_id
