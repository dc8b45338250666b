-- Called while holding the consumer's cycle lock: any other 'running' cycle of the consumer lost its lock,
-- so its process is gone (crashed or killed) and its work was never committed.
UPDATE update_cycles
SET status = 'failed', finished_at = now(),
    error = 'abandoned: its process ended before the cycle committed (crash, kill or lost connection); '
            || 'nothing of it was committed and its rows were taken again'
WHERE consumer = :consumer AND status = 'running'
RETURNING id
