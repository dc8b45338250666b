SELECT id, status, started_at, finished_at, rows_pulled, published, error,
       -- the share of the cycle's fresh rows (new and carried over) that were in a training step, and how many
       -- it carried to the next cycle (NULL for cycles that trained nothing)
       CAST(summary -> 'train' ->> 'fresh_coverage' AS float8) AS fresh_coverage,
       CAST(summary -> 'train' ->> 'queued_for_next_cycle' AS bigint) AS queued_for_next_cycle,
       -- rows that left the training backlog untrained, past FRESHREC_MAX_BACKLOG_ROWS
       CAST(summary -> 'train' ->> 'backlog_expired' AS bigint) AS backlog_expired
FROM update_cycles WHERE consumer = :consumer ORDER BY id DESC LIMIT 1
