-- Models with the item-quality input (FRESHREC_ITEM_QUALITY) read how well liked the items a user chose were: the
-- mean, over the user's earlier interactions, of each item's like-rate at the time the user met it (features.py,
-- item_quality). A user who likes what everyone likes and one who is generous with everything both have a high
-- like-rate; this tells them apart. Each interaction's item rate is computed once, from the clean interactions
-- strictly before it, and kept here (item_rate_log_fill.sql fills every row a cycle's features need), so the
-- feature costs one pass over the user's history instead of a count per item of it. Derived data: a row missing
-- here counts as not yet seen by the feature, and the next fill writes it.
CREATE TABLE item_rate_log (
    interaction_id BIGINT PRIMARY KEY,
    item_rate DOUBLE PRECISION NOT NULL
);
-- The probe set keeps the input (NULL for older probe sets: those pairs read the neutral 0.5 of a new user), and
-- the session rate (FRESHREC_SESSION_RATE, the user's rate over their last 3 interactions; NULL for older probe
-- sets: their overall rate).
ALTER TABLE probe_set ADD COLUMN user_item_quality DOUBLE PRECISION;
ALTER TABLE probe_set ADD COLUMN user_session_rate DOUBLE PRECISION;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'freshrec_serving') THEN
        GRANT SELECT ON item_rate_log TO freshrec_serving;
    END IF;
END
$$;
