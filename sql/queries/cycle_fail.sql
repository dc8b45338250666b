UPDATE update_cycles SET status = 'failed', finished_at = now(), error = :error
WHERE id = :cycle_id AND status = 'running'
