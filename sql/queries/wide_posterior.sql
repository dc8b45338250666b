-- The wide part's posterior of the newest attempt, published or not: a rejected candidate's rows count (wide.py).
SELECT config -> 'extra' -> 'wide_posterior' AS wide_posterior FROM model_versions ORDER BY version DESC LIMIT 1
