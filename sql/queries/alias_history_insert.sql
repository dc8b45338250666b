INSERT INTO model_alias_history (alias, from_version, to_version, action, reason, cycle_id)
VALUES (:alias, :from_version, :to_version, :action, :reason, :cycle_id)
