"""Migrations: idempotent, checksummed, one transaction each, safe when run concurrently."""

import shutil
import threading

import pytest
import sqlalchemy as sa

from freshrec import migrations
from freshrec.db import create_engine
from freshrec.errors import MigrationError
from freshrec.sqlfiles import sql_dir

from conftest import count


@pytest.fixture
def raw_engine(database_url):
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def migration_dir(tmp_path):
    target = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", target)
    return target


def test_apply_twice_changes_nothing(raw_engine):
    first = migrations.upgrade(raw_engine)
    assert first == [p.name for p in sorted((sql_dir() / "migrations").glob("*.sql"))]
    with raw_engine.connect() as conn:
        tables = set(conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    assert {"items", "interactions", "ingest_cursor", "ingest_batches", "quarantine", "validation_results",
            "model_versions", "model_aliases", "model_alias_history", "drift_reports", "update_cycles"} <= tables
    assert migrations.upgrade(raw_engine) == []
    assert count(raw_engine, "freshrec_migrations") == len(first)
    assert all(s.status == "applied" for s in migrations.status(raw_engine))
    migrations.require_current(raw_engine)


def test_pending_schema_is_refused_with_advice(raw_engine):
    with pytest.raises(MigrationError, match="freshrec db upgrade"):
        migrations.require_current(raw_engine)


def test_edited_migration_is_refused(raw_engine, migration_dir):
    migrations.upgrade(raw_engine, migration_dir)
    path = migration_dir / "0001_schema.sql"
    path.write_text(path.read_text() + "\n-- a harmless-looking edit\n")
    with pytest.raises(MigrationError) as err:
        migrations.upgrade(raw_engine, migration_dir)
    assert "0001_schema.sql was edited after it was applied" in str(err.value)
    assert [s.status for s in migrations.status(raw_engine, migration_dir)][0] == "edited"


def test_crlf_checkout_is_not_an_edit(raw_engine, migration_dir):
    migrations.upgrade(raw_engine, migration_dir)
    path = migration_dir / "0001_schema.sql"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert migrations.upgrade(raw_engine, migration_dir) == []


def _next(migration_dir, skip: int = 0) -> str:
    return f"{len(list(migration_dir.glob('*.sql'))) + 1 + skip:04d}"


def test_failed_migration_rolls_back_whole(raw_engine, migration_dir):
    name = _next(migration_dir) + "_broken.sql"
    (migration_dir / name).write_text("CREATE TABLE half_done (id int);\nSELECT no_such_function();\n")
    with pytest.raises(MigrationError, match=name + " failed and was rolled back"):
        migrations.upgrade(raw_engine, migration_dir)
    with raw_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('half_done')")).scalar_one() is None
    assert [s.status for s in migrations.status(raw_engine, migration_dir)][-2:] == ["applied", "pending"]


@pytest.mark.parametrize("name, fragment", [("{gap}_gap.sql", "breaks the numbering"),
                                            ("2_bad_name.sql", "misnamed")])
def test_bad_file_names(migration_dir, name, fragment):
    (migration_dir / name.format(gap=_next(migration_dir, skip=1))).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=fragment):
        migrations.discover(migration_dir)


def test_concurrent_upgrades_apply_once(raw_engine):
    results, errors = [], []

    def run():
        try:
            results.append(migrations.upgrade(raw_engine))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    n = len(migrations.discover())
    assert sorted(len(r) for r in results) == [0, 0, 0, n]
    assert count(raw_engine, "freshrec_migrations") == n
