-- Compare-and-set: move the alias only if it still points at the version the candidate was compared with.
UPDATE model_aliases SET version = :version, updated_at = now()
WHERE alias = :alias AND version = :expected
