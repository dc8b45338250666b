INSERT INTO probe_set (id, user_text, item_text, user_rate, item_rate, user_log_n, item_log_n)
SELECT ord, u, i, ur, ir, un, in_
FROM unnest(CAST(:user_texts AS text[]), CAST(:item_texts AS text[]), CAST(:user_rates AS float8[]),
            CAST(:item_rates AS float8[]), CAST(:user_log_ns AS float8[]), CAST(:item_log_ns AS float8[]))
     WITH ORDINALITY AS p(u, i, ur, ir, un, in_, ord)
ON CONFLICT (id) DO NOTHING
