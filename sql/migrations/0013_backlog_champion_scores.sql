-- A row waiting in the training backlog keeps the score that the champion after its latest cycle gave it, and that
-- champion's version. The publish gate judges held-out rows again in later cycles (FRESHREC_GATE_WINDOW_CYCLES),
-- and a warm start's wide fit needs the champion's logit on backlog rows: while the champion is the same version,
-- neither scores those rows a second time. NULL: not known (rows queued before this column, or a candidate that
-- was published did not score them).
ALTER TABLE training_backlog ADD COLUMN champion_score DOUBLE PRECISION;
ALTER TABLE training_backlog ADD COLUMN scored_by BIGINT;
