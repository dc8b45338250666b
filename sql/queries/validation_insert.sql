INSERT INTO validation_results (batch_id, suite_name, suite_version, success, statistics, results)
VALUES (:batch_id, :suite_name, :suite_version, :success, CAST(:statistics AS jsonb), CAST(:results AS jsonb))
