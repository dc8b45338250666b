INSERT INTO update_cycles (consumer, flow_run_id, status, finished_at, summary)
VALUES (:consumer, :flow_run_id, 'skipped', now(), CAST(:summary AS jsonb))
RETURNING id
