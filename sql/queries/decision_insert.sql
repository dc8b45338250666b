INSERT INTO publish_decisions (cycle_id, champion_version, candidate_version, published, outcome, drift_explains,
                               rules, reasons)
VALUES (:cycle_id, :champion_version, :candidate_version, :published, :outcome, :drift_explains,
        CAST(:rules AS jsonb), CAST(:reasons AS text[]))
