"""freshrec.db: URLs and connection errors are one clear sentence naming the cause and the fix."""

import pytest

from freshrec.db import check_connection, create_engine, parse_database_url
from freshrec.errors import DatabaseError


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


def test_scratch_databases_take_only_plain_names_and_are_replaced_whole(admin_engine, database_url):
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from freshrec.db import recreate_database

    server = make_url(database_url)
    with pytest.raises(DatabaseError, match="not a plain database name"):
        recreate_database(server, "x; DROP DATABASE postgres")
    name = f"freshrec_test_scratch_{uuid.uuid4().hex[:8]}"
    try:
        url = recreate_database(server, name)
        assert url.database == name
        scratch = create_engine(url)
        with scratch.begin() as conn:
            conn.execute(sa.text("CREATE TABLE leftover (x int)"))
        scratch.dispose()
        recreate_database(server, name)  # dropped and created again: nothing left from before
        scratch = create_engine(url)
        with scratch.connect() as conn:
            assert conn.execute(sa.text("SELECT to_regclass('leftover')")).scalar() is None
        scratch.dispose()
    finally:
        with admin_engine.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"))  # a generated name
