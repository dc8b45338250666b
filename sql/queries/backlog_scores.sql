-- Record, for rows now in the training backlog, the champion's score after this cycle's commit (the published
-- candidate's, or the unchanged champion's) and its version (0013_backlog_champion_scores.sql). Rows not in the
-- backlog (trained now) are left alone.
UPDATE training_backlog b
SET champion_score = s.score, scored_by = :version
FROM unnest(CAST(:ids AS bigint[]), CAST(:scores AS double precision[])) AS s(id, score)
WHERE b.consumer = :consumer AND b.interaction_id = s.id
