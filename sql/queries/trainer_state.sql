-- The learning-rate state of the newest attempt, published or not: a rejected candidate's lesson counts.
SELECT config -> 'extra' -> 'lr_state' AS lr_state FROM model_versions ORDER BY version DESC LIMIT 1
