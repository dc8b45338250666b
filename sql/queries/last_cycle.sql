SELECT id, status, started_at, finished_at, rows_pulled, published, error
FROM update_cycles WHERE consumer = :consumer ORDER BY id DESC LIMIT 1
