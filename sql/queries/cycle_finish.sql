UPDATE update_cycles
SET status = :status, finished_at = now(), batch_id = :batch_id, rows_pulled = :rows_pulled,
    rows_quarantined = :rows_quarantined, trained = :trained, champion_version = :champion_version,
    candidate_version = :candidate_version, published = :published, summary = CAST(:summary AS jsonb)
WHERE id = :cycle_id AND status = 'running'
