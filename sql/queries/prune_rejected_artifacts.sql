-- Bounded retention: rejected candidates keep their record, but only the newest :keep keep their bytes, and
-- never a version that an alias or the alias history points at.
UPDATE model_versions v SET artifact = NULL
WHERE v.status IN ('rejected', 'lost_race')
  AND v.artifact IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM model_aliases a WHERE a.version = v.version)
  AND NOT EXISTS (SELECT 1 FROM model_alias_history h WHERE v.version IN (h.from_version, h.to_version))
  AND v.version NOT IN (SELECT r.version FROM model_versions r WHERE r.status IN ('rejected', 'lost_race')
                        ORDER BY r.version DESC LIMIT :keep)
