-- Embeddings of texts by a frozen encoder, kept between cycles (freshrec/embedding_store.py). A head-only warm
-- start (FRESHREC_UPDATE_SCOPE=head) keeps its champion's encoder, so a text's embedding is the same in every cycle
-- until a rebase changes the encoder: a user or item text scored once is not encoded again to train on it as a
-- backlog or replayed row, to judge it in the gate's window or to score the probe set. `encoder` fingerprints the
-- encoder's weights (and the token limit is part of `text_key`), so a changed encoder never reads another's vectors.
-- A cache, not a record: UNLOGGED (not written to the WAL; emptied after a crash, which only costs encoding again),
-- and each head-only cycle drops the oldest rows past FRESHREC_EMBEDDING_CACHE_ROWS, whatever their encoder (a
-- replaced encoder's rows are the oldest; deployments with other champions in the same database share the room).
CREATE UNLOGGED TABLE text_embeddings (
    id BIGSERIAL,
    encoder TEXT NOT NULL,
    text_key BYTEA NOT NULL,
    vector BYTEA NOT NULL,
    PRIMARY KEY (encoder, text_key)
);
CREATE INDEX text_embeddings_id ON text_embeddings (id);
