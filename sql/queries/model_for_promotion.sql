SELECT version, artifact IS NOT NULL AS has_artifact, artifact, artifact_sha256
FROM model_versions WHERE version = :version
