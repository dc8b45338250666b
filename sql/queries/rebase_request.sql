INSERT INTO rebase_requests (consumer, reason) VALUES (:consumer, :reason)
ON CONFLICT (consumer) DO UPDATE SET reason = EXCLUDED.reason, requested_at = now()
