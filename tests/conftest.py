"""Shared fixtures: a throw-away database per test on the real PostgreSQL server, and Prefect's test harness.

FRESHREC_TEST_ADMIN_URL names a server where the tests may create and drop databases
(default: postgres on 127.0.0.1:5432, as on the development machines and in CI).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

_STATE = Path(tempfile.mkdtemp(prefix="freshrec-tests-"))
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)
# Before anything imports Prefect or transformers.
os.environ.update({
    "PREFECT_HOME": str(_STATE / "prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "freshrec",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # as freshrec_cli sets it
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
})
for key in [k for k in os.environ if k.startswith("FRESHREC_") and k != "FRESHREC_TEST_ADMIN_URL"]:
    del os.environ[key]

ADMIN_URL = os.environ.get("FRESHREC_TEST_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def admin_engine():
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        pytest.exit(f"The tests need PostgreSQL at {ADMIN_URL} ({exc.orig}); start it or set "
                    "FRESHREC_TEST_ADMIN_URL.", returncode=3)
    yield engine
    engine.dispose()


@pytest.fixture
def database_url(admin_engine) -> str:
    """A new, empty database; dropped after the test."""
    name = f"freshrec_test_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE " + name))  # name is generated above, not user input
    url = sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin_engine.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"))


@pytest.fixture
def engine(database_url):
    """An engine on a fresh, migrated database."""
    from freshrec import migrations
    from freshrec.db import create_engine

    eng = create_engine(database_url)
    migrations.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def env(monkeypatch, database_url, tmp_path):
    """Point freshrec's settings (read from the environment by tasks and flows) at the test database."""
    monkeypatch.setenv("FRESHREC_DATABASE_URL", database_url)
    monkeypatch.setenv("FRESHREC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FRESHREC_MODEL", "tiny")
    monkeypatch.setenv("FRESHREC_TRAIN_MODE", "full")
    return monkeypatch


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield



@pytest.fixture(scope="module")
def artifact():
    """A random tiny model's artifact (untrained): for tests that store, load and serve versions."""
    from freshrec.model import build_model
    from freshrec.artifacts import save_artifact
    from helpers import config

    cfg = config("full")
    return save_artifact(build_model(cfg), cfg)


@pytest.fixture
def reader(database_url):
    """An engine on the test database as freshrec api's read-only serving role."""
    from freshrec.serving import serving_engine

    eng = serving_engine(database_url)
    yield eng
    eng.dispose()


# A gate that lets every trained candidate through: for tests about the stages, not the model's quality.
PUBLISH_EVERYTHING = {"FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "value": 0.0}]',
                      "FRESHREC_MAX_PROBE_CHANGE": "1.0"}


def publish_everything(env) -> None:
    for key, value in PUBLISH_EVERYTHING.items():
        env.setenv(key, value)


def count(engine, table: str, where: str = "true") -> int:
    # table/where come from the tests themselves
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM " + table + " WHERE " + where)).scalar_one())


# --- test loops (docs/testing.md) -------------------------------------------------------------------
# Fixtures that mean a test needs the PostgreSQL server or Prefect's harness.
SERVICE_FIXTURES = {"admin_engine", "database_url", "engine", "env", "prefect_harness"}


def pytest_collection_modifyitems(config, items):
    """`unit` for every test that needs no database, no Prefect and no model training: the fast loop."""
    for item in items:
        if item.get_closest_marker("unit"):
            continue
        if SERVICE_FIXTURES & set(item.fixturenames):
            continue
        if item.get_closest_marker("slow") or item.get_closest_marker("train"):
            continue
        item.add_marker(pytest.mark.unit)
