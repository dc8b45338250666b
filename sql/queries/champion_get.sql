SELECT v.version, v.artifact, v.artifact_sha256, v.reference_sample
FROM model_aliases a
JOIN model_versions v ON v.version = a.version
WHERE a.alias = :alias
