INSERT INTO probe_set (id, user_text, item_text)
SELECT ord, u, i FROM unnest(CAST(:user_texts AS text[]), CAST(:item_texts AS text[])) WITH ORDINALITY AS p(u, i, ord)
ON CONFLICT (id) DO NOTHING
