"""freshrec.sqlfiles: every named query loads and binds its parameters; an unknown name fails naming the file."""

import re

import pytest
import sqlalchemy as sa

from freshrec.sqlfiles import query, sql_dir

NAMES = sorted(p.stem for p in (sql_dir() / "queries").glob("*.sql"))





def test_every_query_loads_once_as_a_statement_whose_parameters_bind():
    assert len(NAMES) > 50 and (sql_dir() / "migrations").is_dir()
    for name in NAMES:
        clause = query(name)
        assert isinstance(clause, sa.TextClause) and clause.text.strip(), name
        assert query(name) is clause  # read from the file once
        # ':x::type' would not bind (freshrec.sqlfiles): casts of parameters are written CAST(:x AS type)
        assert not re.search(r"(?<![:\w]):[A-Za-z_]\w*::", clause.text), name
    assert set(query("rows_waiting").compile().params) == {"last_txid", "last_id", "cap"}


def test_a_query_runs_with_its_parameters_bound_by_name(engine):
    with engine.connect() as conn:
        assert conn.execute(query("database_exists"), {"name": engine.url.database}).first() is not None
        assert conn.execute(query("database_exists"), {"name": "no_such_database"}).first() is None


def test_an_unknown_query_name_fails_naming_the_missing_file():
    with pytest.raises(FileNotFoundError, match=r"queries/no_such_query\.sql"):
        query("no_such_query")
