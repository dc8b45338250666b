SELECT id, title, description, category FROM items WHERE id = ANY(CAST(:ids AS bigint[]))
