SELECT id, cycle_id, champion_version, candidate_version, published, outcome, drift_explains, rules, reasons,
       decided_at
FROM publish_decisions
ORDER BY id DESC
LIMIT :limit
