"""Connections: the configured PostgreSQL URL, or an embedded server when none is set.

Every failure a user can cause (bad URL, server down, database missing) becomes one DatabaseError
sentence naming the URL (password hidden), what failed and how to fix it.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from freshrec.errors import DatabaseError
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

URL_HELP = "use the form postgresql+psycopg2://user:password@host:5432/dbname"


def parse_database_url(raw: str) -> URL:
    """Parse and normalise a PostgreSQL URL to the psycopg2 driver; refuse anything else clearly."""
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise DatabaseError(
            f"FRESHREC_DATABASE_URL {raw!r} is not a valid database URL: {URL_HELP}."
        ) from None
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg2")
    if not url.drivername.startswith("postgresql"):
        raise DatabaseError(
            f"FRESHREC_DATABASE_URL {url.render_as_string(hide_password=True)!r} names the "
            f"{url.drivername!r} driver, but freshrec needs PostgreSQL: {URL_HELP}."
        )
    if url.drivername != "postgresql+psycopg2":
        url = url.set(drivername="postgresql+psycopg2")
    if not url.database:
        raise DatabaseError(
            f"FRESHREC_DATABASE_URL {url.render_as_string(hide_password=True)!r} names no database: {URL_HELP}."
        )
    return url


def describe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def describe_error(exc: BaseException) -> str:
    """The first meaningful line of a driver error, without psycopg2's noise."""
    text = str(getattr(exc, "orig", exc) or exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("(Background")]
    reason = lines[-1] if lines else text
    for line in lines:
        if "FATAL" in line or "failed:" in line or "could not" in line:
            reason = line
    reason = re.sub(r"^.*?failed:\s*", "", reason)
    return reason.replace("FATAL:", "").strip().rstrip(".")


def create_engine(url: URL | str, *, pool_size: int = 5) -> Engine:
    """An engine with short connect timeouts; does not connect yet."""
    url = parse_database_url(url) if isinstance(url, str) else url
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        connect_args={"connect_timeout": 10, "application_name": "freshrec"},
    )


def check_connection(engine: Engine) -> str:
    """Connect once and return the server version; translate failures into one sentence."""
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar_one())
    except (OperationalError, ProgrammingError) as exc:
        raise connection_error(engine.url, exc) from None


def connection_error(url: URL, exc: BaseException) -> DatabaseError:
    reason = describe_error(exc)
    if "does not exist" in reason and "database" in reason:
        fix = f"create it (createdb {url.database}) or point FRESHREC_DATABASE_URL at an existing database"
    elif "password" in reason or "authentication" in reason:
        fix = "check the user name and password in FRESHREC_DATABASE_URL"
    else:
        fix = ("check that the server is running and FRESHREC_DATABASE_URL is right, "
               "or unset FRESHREC_DATABASE_URL to use the embedded PostgreSQL")
    return DatabaseError(f"Cannot connect to PostgreSQL at {describe(url)} ({reason}): {fix}.")


def _plain_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
        raise DatabaseError(f"{name!r} is not a plain database name: use lower-case letters, digits and _.")
    return name


def _admin_url(server_url: URL, name: str) -> URL:
    """Where to run CREATE/DROP DATABASE: the maintenance database 'postgres' when this user may connect to
    it (the URL's own database may be the one being replaced), else the URL's database."""
    maintenance = server_url.set(database="postgres")
    probe = sa.create_engine(maintenance)
    try:
        with probe.connect():
            return maintenance
    except OperationalError:
        if server_url.database == name:
            raise
        return server_url
    finally:
        probe.dispose()


def _create_database(server_url: URL, name: str, *, replace: bool) -> URL:
    try:
        admin = sa.create_engine(_admin_url(server_url, name), isolation_level="AUTOCOMMIT")
    except OperationalError as exc:
        raise connection_error(server_url, exc) from None
    quoted = admin.dialect.identifier_preparer.quote(_plain_name(name))  # DDL takes no bind parameters for names
    try:
        with admin.connect() as conn:
            if replace:
                conn.execute(sa.text("DROP DATABASE IF EXISTS " + quoted + " WITH (FORCE)"))
            if replace or not conn.execute(query("database_exists"), {"name": name}).first():
                conn.execute(sa.text("CREATE DATABASE " + quoted))
    except OperationalError as exc:
        raise connection_error(server_url, exc) from None
    except ProgrammingError as exc:
        raise DatabaseError(
            f"Could not create the database {name} on {describe(server_url)} ({describe_error(exc)}): "
            "grant the user CREATEDB, or unset FRESHREC_DATABASE_URL to use the embedded PostgreSQL.") from None
    finally:
        admin.dispose()
    return server_url.set(database=name)


def recreate_database(server_url: URL, name: str) -> URL:
    """Drop and create a scratch database (for the demo and benchmarks) on the server of server_url."""
    return _create_database(server_url, name, replace=True)


def copy_out_csv(engine: Engine, clause: sa.TextClause, params: dict) -> bytes:
    """Run a SELECT through COPY ... TO STDOUT (CSV), the fastest way to move many rows out of PostgreSQL.

    COPY takes no bind parameters, so SQLAlchemy renders the values as literals with its own quoting.
    """
    import io

    from sqlalchemy.dialects import postgresql

    sql = str(clause.bindparams(**params).compile(dialect=postgresql.dialect(),
                                                  compile_kwargs={"literal_binds": True}))
    buffer = io.BytesIO()
    raw = engine.raw_connection()
    try:
        raw.cursor().copy_expert("COPY (" + sql + ") TO STDOUT WITH (FORMAT csv)", buffer)
        raw.commit()
    finally:
        raw.close()
    return buffer.getvalue()


# --- embedded server ---------------------------------------------------------------------------


@lru_cache(maxsize=None)
def start_embedded(data_dir: Path, database: str = "freshrec") -> URL:
    """Start (or join) the embedded PostgreSQL under data_dir/pg and return a URL to `database` in it.

    pgserver ships PostgreSQL 16 in a wheel, listens on a Unix socket only, and stops the server when the
    last process using it exits. Running as root, it creates a system user 'pgserver' to own the data.
    """
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, containers) and falls back to /tmp: fine.
        warnings.simplefilter("ignore")
        import pgserver

    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pg"
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises plain subprocess/OS errors
        raise DatabaseError(
            f"The embedded PostgreSQL could not start in {pgdata} ({exc}): look at {pgdata / 'log'}, "
            "or set FRESHREC_DATABASE_URL to an existing PostgreSQL server."
        ) from None
    url = _create_database(parse_database_url(server.get_uri()), database, replace=False)
    log.info("using the embedded PostgreSQL in %s (set FRESHREC_DATABASE_URL to use another server)", pgdata)
    return url


def resolve_database_url(database_url: str | None, data_dir: Path, embedded_database: str = "freshrec") -> URL:
    """The configured URL, or the embedded server's when none is configured."""
    if database_url:
        return parse_database_url(database_url)
    return start_embedded(Path(data_dir), embedded_database)


@lru_cache(maxsize=8)
def _engine_for(url_text: str) -> Engine:
    return create_engine(make_url(url_text))


def connect(database_url: str | None, data_dir: Path, embedded_database: str = "freshrec") -> Engine:
    """A checked, process-wide engine for the configured (or embedded) database."""
    url = resolve_database_url(database_url, data_dir, embedded_database)
    engine = _engine_for(url.render_as_string(hide_password=False))
    check_connection(engine)
    return engine
