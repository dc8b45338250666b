"""Locate the plain-SQL files under sql/: numbered migrations and named queries.

Queries live one per file in sql/queries/<name>.sql and are run through SQLAlchemy text() with bound
parameters only (write casts as CAST(:x AS type): ':x::type' does not bind).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

from freshrec.errors import MigrationError


def sql_dir() -> Path:
    """sql/ beside the package in a checkout, or the copy packed into the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_sql", here.parent / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise MigrationError(f"The sql/ folder was not found next to {here}: reinstall freshrec (pip install -e .).")


@lru_cache(maxsize=None)
def query(name: str) -> sa.TextClause:
    """The named query from sql/queries/<name>.sql as a bindable text clause."""
    path = sql_dir() / "queries" / f"{name}.sql"
    return sa.text(path.read_text(encoding="utf-8"))
