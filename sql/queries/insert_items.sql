INSERT INTO items (id, title, description, category)
SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:titles AS text[]),
                     CAST(:descriptions AS text[]), CAST(:categories AS text[]))
ON CONFLICT (id) DO NOTHING
