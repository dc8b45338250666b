SELECT alias, from_version, to_version, action, reason, cycle_id, changed_at
FROM model_alias_history
WHERE from_version = :version OR to_version = :version
ORDER BY id
