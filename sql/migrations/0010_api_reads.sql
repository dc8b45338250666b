-- freshrec api runs as the read-only serving role and also shows drift reports, publish decisions, cycles
-- and ingestion status: SELECT on those tables too (still no write anywhere). The role is created by 0004;
-- where it was not (a migrating user who may not create roles), grant these by hand with it.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'freshrec_serving') THEN
        GRANT SELECT ON drift_reports, publish_decisions, update_cycles, ingest_cursor, ingest_batches
            TO freshrec_serving;
    ELSE
        RAISE NOTICE 'role freshrec_serving does not exist: freshrec api needs SELECT on drift_reports, '
                     'publish_decisions, update_cycles, ingest_cursor, ingest_batches for its role';
    END IF;
END
$$;
