-- The kept embeddings of these texts by this encoder (0014_text_embeddings.sql).
SELECT text_key, vector FROM text_embeddings
WHERE encoder = :encoder AND text_key = ANY(CAST(:keys AS bytea[]))
