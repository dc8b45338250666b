SELECT artifact, artifact_sha256 FROM model_versions WHERE version = :version
