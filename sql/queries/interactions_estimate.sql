-- The planner's row estimate (free); -1 or 0 before the first ANALYZE.
SELECT CAST(reltuples AS bigint) AS estimate FROM pg_class WHERE oid = CAST('interactions' AS regclass)
