INSERT INTO model_versions (status, base_model, train_mode, parent_version, artifact, artifact_sha256,
                            artifact_size, config, metrics, training_batch_ids, cycle_id, reason, reference_sample)
VALUES (:status, :base_model, :train_mode, :parent_version, :artifact, :artifact_sha256, :artifact_size,
        CAST(:config AS jsonb), CAST(:metrics AS jsonb), CAST(:training_batch_ids AS bigint[]), :cycle_id, :reason,
        CAST(:reference_sample AS jsonb))
RETURNING version
