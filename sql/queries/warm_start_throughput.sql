-- Training examples per second of the newest warm start (published or not), from its config's last_train: how
-- many replayed rows the next warm start's time budget is likely to reach (trainer.replay_rows). NULL: none yet,
-- or made before this was recorded.
SELECT (config -> 'extra' -> 'last_train' ->> 'examples_per_s')::double precision
FROM model_versions
WHERE config -> 'extra' -> 'lineage' ->> 'kind' = 'warm_start'
ORDER BY version DESC
LIMIT 1
