SELECT html_gzip, html_sha256 FROM drift_reports WHERE cycle_id = :cycle_id
