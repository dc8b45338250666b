"""Settings and connection errors: one clear sentence naming the cause and the fix."""

import subprocess
import sys

import pytest

from freshrec.db import check_connection, create_engine, parse_database_url
from freshrec.errors import ConfigError, DatabaseError
from freshrec.settings import load_settings


def test_defaults_and_env_prefix(monkeypatch):
    monkeypatch.setenv("FRESHREC_MAX_BATCH_ROWS", "1234")
    monkeypatch.setenv("FRESHREC_MODEL", "tiny")
    s = load_settings()
    assert s.max_batch_rows == 1234
    assert s.model == "tiny"
    assert s.database_url is None
    assert s.resolved_reports_dir == s.data_dir / "reports"


def test_secret_url_is_not_printed(monkeypatch):
    monkeypatch.setenv("FRESHREC_DATABASE_URL", "postgresql://u:hunter2@db/x")
    s = load_settings()
    assert "hunter2" not in repr(s)
    assert s.database_url.get_secret_value().endswith("@db/x")


def test_invalid_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("FRESHREC_MAX_BATCH_ROWS", "lots")
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert "FRESHREC_MAX_BATCH_ROWS" in msg and "'lots'" in msg and "\n" not in msg


@pytest.mark.parametrize("url, fragment", [
    ("not a url", "not a valid database URL"),
    ("mysql://root@localhost/x", "needs PostgreSQL"),
    ("postgresql://postgres@localhost", "names no database"),
])
def test_bad_urls(url, fragment):
    with pytest.raises(DatabaseError) as err:
        parse_database_url(url)
    assert fragment in str(err.value)
    assert "postgresql+psycopg2://user:password@host:5432/dbname" in str(err.value)


def test_plain_postgresql_url_gets_psycopg2():
    assert parse_database_url("postgres://a@h/d").drivername == "postgresql+psycopg2"


def test_unreachable_server_is_one_sentence():
    engine = create_engine("postgresql://postgres:secret@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseError) as err:
        check_connection(engine)
    msg = str(err.value)
    assert "127.0.0.1:1/nowhere" in msg and "secret" not in msg
    assert "Connection refused" in msg or "connection refused" in msg.lower()
    assert "FRESHREC_DATABASE_URL" in msg and "\n" not in msg


def test_missing_database_suggests_createdb(database_url):
    from sqlalchemy.engine import make_url

    url = make_url(database_url).set(database="freshrec_no_such_db")
    with pytest.raises(DatabaseError) as err:
        check_connection(create_engine(url))
    assert "does not exist" in str(err.value) and "createdb freshrec_no_such_db" in str(err.value)


def test_cli_prints_one_line_not_a_traceback():
    env = {"FRESHREC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "db", "status"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: Cannot connect to PostgreSQL at postgresql+psycopg2://postgres@127.0.0.1:1/x")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
