-- Keep the newest :keep rows of a consumer's training backlog; the older ones leave it (they stay in the history
-- that replay draws from). Returns the rows that left.
WITH ranked AS (
    SELECT b.interaction_id, row_number() OVER (ORDER BY x.occurred_at DESC, x.id DESC) AS place
    FROM training_backlog b
    JOIN interactions x ON x.id = b.interaction_id
    WHERE b.consumer = :consumer
)
DELETE FROM training_backlog t
USING ranked r
WHERE t.consumer = :consumer AND t.interaction_id = r.interaction_id AND r.place > :keep
RETURNING t.interaction_id
