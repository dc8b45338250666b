SELECT cycle_id, champion_version, candidate_version, published, outcome, drift_explains, rules, reasons, decided_at
FROM publish_decisions
WHERE candidate_version = :version
ORDER BY id
