-- Models with learned item-id embeddings also read the item and the user's recent liked items' ids; the
-- probe set keeps them (NULL for older probe sets: those pairs score without the id term).
ALTER TABLE probe_set
    ADD COLUMN item_id          BIGINT,
    ADD COLUMN history_item_ids BIGINT[];
