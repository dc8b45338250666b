SELECT v.version, v.status, v.base_model, v.train_mode, v.parent_version, v.artifact_sha256, v.artifact_size,
       v.artifact IS NOT NULL AS has_artifact, v.metrics, v.cycle_id, v.reason, v.created_at,
       COALESCE(array_agg(a.alias ORDER BY a.alias) FILTER (WHERE a.alias IS NOT NULL), CAST('{}' AS text[])) AS aliases
FROM model_versions v
LEFT JOIN model_aliases a ON a.version = v.version
GROUP BY v.version
ORDER BY v.version DESC
LIMIT :limit
