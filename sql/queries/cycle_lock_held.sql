SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 2
      AND classid = CAST(CAST(:namespace AS integer) AS oid) AND objid = CAST(hashtext(:consumer) AS oid)
)
