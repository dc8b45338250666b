INSERT INTO drift_reports (cycle_id, batch_id, champion_version, dataset_drift, drifted_share, columns,
                           reference_rows, current_rows, html_path, html_gzip, html_sha256)
VALUES (:cycle_id, :batch_id, :champion_version, :dataset_drift, :drifted_share, CAST(:columns AS jsonb),
        :reference_rows, :current_rows, :html_path, :html_gzip, :html_sha256)
