SELECT from_version, to_version, action FROM model_alias_history WHERE alias = :alias ORDER BY id
