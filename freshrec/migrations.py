"""Numbered plain-SQL migrations: applied once each, in a transaction, checksummed, under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from freshrec.errors import MigrationError
from freshrec.locks import MIGRATION_LOCK
from freshrec.sqlfiles import query, sql_dir

log = logging.getLogger(__name__)

FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str
    checksum: str


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    checksum: str
    applied_at: str | None  # ISO time, None when pending
    status: str  # applied | pending | edited | unknown


def discover(directory: Path | None = None) -> list[Migration]:
    """The migration files, in order; refuses gaps, duplicates and badly named files."""
    directory = directory or sql_dir() / "migrations"
    found: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(
                f"Migration file {path.name} is misnamed: name it NNNN_lower_snake_case.sql (e.g. 0002_add_index.sql)."
            )
        # Normalise line endings so a checkout with CRLF conversion does not look edited.
        text = path.read_bytes().replace(b"\r\n", b"\n")
        found.append(Migration(int(match.group(1)), match.group(2), path, text.decode("utf-8"),
                               hashlib.sha256(text).hexdigest()))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"Migration {migration.path.name} breaks the numbering (expected {expected:04d}): "
                "migrations must be numbered 0001, 0002, ... with no gaps or repeats."
            )
    return found


def _ensure_table(conn: sa.Connection) -> None:
    conn.execute(query("migrations_create_table"))


def _applied(conn: sa.Connection) -> dict[int, sa.Row]:
    return {row.version: row for row in conn.execute(query("migrations_applied"))}


def _check_not_edited(migrations: list[Migration], applied: dict[int, sa.Row]) -> None:
    for m in migrations:
        row = applied.get(m.version)
        if row is not None and row.checksum != m.checksum:
            raise MigrationError(
                f"Migration {m.path.name} was edited after it was applied (checksum {row.checksum[:12]} in the "
                f"database, {m.checksum[:12]} on disk): restore the file and put the change in a new migration."
            )
    known = {m.version for m in migrations}
    unknown = sorted(v for v in applied if v not in known)
    if unknown:
        raise MigrationError(
            f"The database has migration(s) {unknown} that this freshrec does not know: upgrade freshrec "
            "to the version that created them."
        )


def upgrade(engine: Engine, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to run concurrently and repeatedly."""
    migrations = discover(directory)
    applied_now: list[str] = []
    with engine.connect() as lock_conn:
        # A session-level advisory lock serialises concurrent upgrades; each migration still gets its
        # own transaction, so a failure leaves earlier ones applied and this one untouched.
        lock_conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        lock_conn.commit()
        try:
            with engine.begin() as conn:
                _ensure_table(conn)
                applied = _applied(conn)
            _check_not_edited(migrations, applied)
            for m in migrations:
                if m.version in applied:
                    continue
                started = time.perf_counter()
                with engine.begin() as conn:
                    try:
                        # No parameters: psycopg2 sends the file as-is, several statements at once.
                        conn.connection.cursor().execute(m.sql)
                    except Exception as exc:
                        raise MigrationError(
                            f"Migration {m.path.name} failed and was rolled back "
                            f"({str(getattr(exc, 'pgerror', None) or exc).strip().splitlines()[0]}): fix the SQL "
                            "and run 'freshrec db upgrade' again."
                        ) from None
                    conn.execute(query("migrations_record"), {
                        "version": m.version, "name": m.name, "checksum": m.checksum,
                        "duration_ms": int((time.perf_counter() - started) * 1000),
                    })
                applied_now.append(m.path.name)
                log.info("applied migration %s", m.path.name)
        finally:
            lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            lock_conn.commit()
    return applied_now


def status(engine: Engine, directory: Path | None = None) -> list[MigrationState]:
    """What is applied, pending or edited, file by file."""
    migrations = discover(directory)
    with engine.begin() as conn:
        exists = conn.execute(sa.text("SELECT to_regclass('freshrec_migrations') IS NOT NULL")).scalar_one()
        applied = _applied(conn) if exists else {}
    states = []
    for m in migrations:
        row = applied.get(m.version)
        if row is None:
            states.append(MigrationState(m.version, m.name, m.checksum, None, "pending"))
        else:
            states.append(MigrationState(m.version, m.name, m.checksum, row.applied_at.isoformat(),
                                         "applied" if row.checksum == m.checksum else "edited"))
    known = {m.version for m in migrations}
    for version, row in sorted(applied.items()):
        if version not in known:
            states.append(MigrationState(version, row.name, row.checksum, row.applied_at.isoformat(), "unknown"))
    return states


def require_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is behind this code."""
    pending = [s for s in status(engine) if s.status != "applied"]
    if pending:
        names = ", ".join(f"{s.version:04d}_{s.name} ({s.status})" for s in pending)
        raise MigrationError(f"The database schema is not up to date ({names}): run 'freshrec db upgrade'.")
