-- Drop the oldest embeddings past :max_rows, whatever their encoder (0014_text_embeddings.sql).
DELETE FROM text_embeddings
WHERE id <= (SELECT id FROM text_embeddings ORDER BY id DESC OFFSET :max_rows LIMIT 1)
