INSERT INTO training_backlog (consumer, interaction_id, reason, cycle_id)
SELECT :consumer, id, :reason, :cycle_id FROM unnest(CAST(:ids AS bigint[])) AS id
ON CONFLICT (consumer, interaction_id) DO NOTHING
