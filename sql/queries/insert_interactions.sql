INSERT INTO interactions (user_id, item_id, event_type, label, dwell_ms, occurred_at)
SELECT * FROM unnest(CAST(:user_ids AS bigint[]), CAST(:item_ids AS bigint[]), CAST(:event_types AS text[]),
                     CAST(:labels AS smallint[]), CAST(:dwell_ms AS integer[]), CAST(:occurred_at AS timestamptz[]))
