-- Compare-and-set for an alias that does not exist yet: only one creator wins.
INSERT INTO model_aliases (alias, version) VALUES (:alias, :version) ON CONFLICT (alias) DO NOTHING
