SELECT id FROM items WHERE id = ANY(CAST(:ids AS bigint[]))
