-- Candidates trained since the newest rebase (or since the first version): the rebase schedule counts these.
SELECT count(*) FROM model_versions
WHERE version > coalesce((SELECT max(version) FROM model_versions
                          WHERE config -> 'extra' -> 'lineage' ->> 'kind' IN ('rebase', 'cold_start')), 0)
