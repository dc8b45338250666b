-- Issue 16: a read horizon per database, and one "clean interactions" relation for every feature query.

-- The reader's horizon: the reader takes a row only when its writing transaction's id lies below this value.
-- pg_snapshot_xmin(pg_current_snapshot()) is server-wide: an open write transaction in ANY database of the
-- server held every consumer back. This view leaves out only transactions proven to belong to another
-- database, which cannot write this database's tables. Why it keeps the exactly-once guarantee:
--   * The statement that reads the view also reads the rows, with the same snapshot S (a view is inlined:
--     pg_current_snapshot() is S, the snapshot of the pulling statement).
--   * Any transaction id X below S's xmax that is not in S's in-progress list (pg_snapshot_xip) had finished
--     when S was taken: its rows are visible in S if it committed, and it will never write again.
--   * An X in S's in-progress list is skipped only if pg_stat_activity, read after S was taken, shows a
--     backend of another database (datid <> this database's oid) whose top-level transaction id is X. A
--     backend stays in one database for its whole life and transaction ids are not reused within the
--     ~2^31 window that in-progress ids span, so X belongs to a transaction of another database: it cannot
--     insert into this database's interactions. Everything else in the list (our own database's writers,
--     prepared transactions, ids whose backend ended between S and the read, backends whose xid the
--     current role may not see) holds the horizon back, as before: being conservative never loses a row.
--   * The horizon is at most S's xmax, so transactions that start after S (ids >= xmax) are never passed.
--   * Rows carry pg_current_xact_id(), the top-level id, which is what xip and backend_xid list.
-- Matching uses the low 32 bits (backend_xid is a 32-bit xid); in-progress ids span less than 2^31.
CREATE VIEW read_horizon AS
WITH snap AS (SELECT pg_current_snapshot() AS s),
other_database_xids AS (
    SELECT CAST(CAST(a.backend_xid AS text) AS bigint) AS xid32
    FROM pg_stat_activity a
    WHERE a.backend_xid IS NOT NULL
      AND a.datid IS NOT NULL
      AND a.datid <> (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
)
SELECT coalesce(
           (SELECT min(x)
            FROM snap, pg_snapshot_xip(snap.s) AS x
            WHERE CAST(CAST(x AS text) AS numeric) % 4294967296 NOT IN (SELECT xid32 FROM other_database_xids)),
           (SELECT pg_snapshot_xmax(s) FROM snap)) AS horizon;

-- The one relation every feature query reads (point-in-time rates, serving rates, category rates, drift
-- popularity and activity, histories, recent likes, replay): interactions that no consumer quarantined.
-- A bot's likes, duplicates, unknown items and implausible times move no feature, in training, serving
-- and the benchmarks alike. Rows not yet validated count as clean until a cycle quarantines them.
-- Only the columns features read: PostgreSQL refuses to change the type of a column a view uses, and a
-- producer's schema change to the others (dwell_ms, event_type, ...) must stay possible (validation then
-- rejects the batch as schema-broken instead of the producer's migration failing).
CREATE VIEW clean_interactions AS
SELECT x.id, x.user_id, x.item_id, x.label, x.occurred_at
FROM interactions x
WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.interaction_id = x.id);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'freshrec_serving') THEN
        GRANT SELECT ON clean_interactions, read_horizon TO freshrec_serving;
    END IF;
END
$$;
