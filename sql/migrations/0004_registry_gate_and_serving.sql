-- Every publish decision, with both versions, each rule's metric, threshold and verdict, and the reasons.
CREATE TABLE publish_decisions (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cycle_id          BIGINT REFERENCES update_cycles (id),
    champion_version  BIGINT REFERENCES model_versions (version),
    candidate_version BIGINT REFERENCES model_versions (version),
    published         BOOLEAN NOT NULL,
    outcome           TEXT NOT NULL,  -- published | rejected | lost_race | no_candidate
    drift_explains    BOOLEAN NOT NULL DEFAULT false,
    rules             JSONB NOT NULL,
    reasons           TEXT[] NOT NULL,
    decided_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX publish_decisions_cycle ON publish_decisions (cycle_id);

-- A fixed set of (user text, item text) pairs: the stability guard scores it with champion and candidate.
CREATE TABLE probe_set (
    id         INTEGER PRIMARY KEY,
    user_text  TEXT NOT NULL,
    item_text  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Serving reads, never writes: a role with SELECT on what ranking needs (the registry, item texts and
-- users' past interactions). Roles are cluster-wide, so it is created once; a migrating user who may not
-- create roles skips this with a notice (grant it by hand later).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'freshrec_serving') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            CREATE ROLE freshrec_serving NOLOGIN;
        ELSE
            RAISE NOTICE 'role freshrec_serving not created: % may not create roles', current_user;
            RETURN;
        END IF;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO freshrec_serving', current_database());
    GRANT USAGE ON SCHEMA public TO freshrec_serving;
    GRANT SELECT ON model_versions, model_aliases, model_alias_history, items, interactions, quarantine
        TO freshrec_serving;
END
$$;
