SELECT version, artifact IS NOT NULL AS has_artifact FROM model_versions WHERE version = :version
