"""freshrec.locks: each kind of exclusive work has its own advisory-lock key, in the ranges PostgreSQL takes."""

import sqlalchemy as sa

from freshrec.cycles import cycle_lock
from freshrec.locks import CYCLE_LOCK_NAMESPACE, MIGRATION_LOCK





def test_keys_fit_postgresqls_lock_functions_and_carry_the_projects_prefix():
    assert -2**63 <= MIGRATION_LOCK < 2**63  # pg_advisory_lock(bigint)
    assert -2**31 <= CYCLE_LOCK_NAMESPACE < 2**31  # pg_try_advisory_lock(integer, integer)
    assert CYCLE_LOCK_NAMESPACE.to_bytes(4, "big") == b"fres" and MIGRATION_LOCK >> 32 == CYCLE_LOCK_NAMESPACE


def test_a_consumers_cycle_lock_blocks_only_its_own_consumers_cycles(engine):
    with cycle_lock(engine, "default") as held, engine.connect() as other:
        assert held
        # a running cycle does not block a schema upgrade's lock
        assert other.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATION_LOCK}).scalar_one()
        other.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
        with cycle_lock(engine, "default") as same, cycle_lock(engine, "another") as another:
            assert not same and another  # a second run of the consumer waits its turn; another consumer runs
