SELECT r.cycle_id, r.created_at, r.dataset_drift, r.drifted_share, r.champion_version, r.batch_id,
       r.reference_rows, r.current_rows, r.html_path, octet_length(r.html_gzip) AS stored_bytes, r.columns
FROM drift_reports r
ORDER BY r.cycle_id DESC
LIMIT :limit
