-- Keep new embeddings by this encoder; a text another cycle stored first keeps its vector (the same one).
INSERT INTO text_embeddings (encoder, text_key, vector)
SELECT :encoder, k, v FROM unnest(CAST(:keys AS bytea[]), CAST(:vectors AS bytea[])) AS s(k, v)
ON CONFLICT (encoder, text_key) DO NOTHING
