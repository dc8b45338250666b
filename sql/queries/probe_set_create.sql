INSERT INTO probe_set (id, user_text, item_text, user_rate, item_rate, user_log_n, item_log_n, item_id,
                       history_item_ids, user_category_rate, user_recent_rate, user_item_quality,
                       user_session_rate)
SELECT p.ord, p.u, p.i, p.ur, p.ir, p.un, p.in_, p.item_id,
       -- one history per pair, packed as text because PostgreSQL arrays are not ragged
       CAST(string_to_array(NULLIF(p.hist, ''), ',') AS bigint[]), p.ucr, p.urr, p.uiq, p.usr
FROM unnest(CAST(:user_texts AS text[]), CAST(:item_texts AS text[]), CAST(:user_rates AS float8[]),
            CAST(:item_rates AS float8[]), CAST(:user_log_ns AS float8[]), CAST(:item_log_ns AS float8[]),
            CAST(:item_ids AS bigint[]), CAST(:histories AS text[]), CAST(:user_category_rates AS float8[]),
            CAST(:user_recent_rates AS float8[]), CAST(:user_item_qualities AS float8[]),
            CAST(:user_session_rates AS float8[]))
     WITH ORDINALITY AS p(u, i, ur, ir, un, in_, item_id, hist, ucr, urr, uiq, usr, ord)
ON CONFLICT (id) DO NOTHING
