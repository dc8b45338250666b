INSERT INTO update_cycles (consumer, flow_run_id, status) VALUES (:consumer, :flow_run_id, 'running') RETURNING id
