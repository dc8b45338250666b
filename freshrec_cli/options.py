"""What the commands share: the --json and --model options, the settings, ids checked before the database sees
them, and the engines (the read-write one, checked against the schema, and the read-only serving one)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="minilm (default), tiny, or a Hugging Face "
                                                 "model folder; overrides FRESHREC_MODEL.")]


def current_settings(**overrides):
    from freshrec.settings import load_settings

    return load_settings(**overrides)


def db_id(value: int | None, option: str) -> int | None:
    """An id the database can hold (bigint): a larger one is a mistake of the caller, said in one sentence."""
    from freshrec.errors import ConfigError

    if value is not None and not 0 < value < 2**63:
        raise ConfigError(f"{option} {value} is not an id freshrec could have made (ids run from 1 to 2^63-1): "
                          "pass one that 'freshrec status', 'reports list' or 'models list' shows.")
    return value


def checked_engine(settings, migrate_check: bool = True):
    from freshrec import migrations
    from tasks.common import engine_for

    engine = engine_for(settings)
    if migrate_check:
        if settings.database_url is None:
            migrations.upgrade(engine)  # the embedded database is freshrec's own: keep it current
        else:
            migrations.require_current(engine)
    return engine


def read_only_engine(settings):
    """The read-only engine of the serving commands; one sentence if the role cannot be used."""
    from freshrec.db import check_connection
    from freshrec.errors import DatabaseError
    from freshrec.serving import serving_engine
    from tasks.common import database_url_for

    checked_engine(settings)  # starts the embedded server if needed and checks the schema
    url = database_url_for(settings)
    engine = serving_engine(url.render_as_string(hide_password=False), settings.serving_role or None)
    try:
        check_connection(engine)
    except DatabaseError as exc:
        if settings.serving_role and "role" in str(exc):
            raise DatabaseError(f"Cannot score as role {settings.serving_role} ({exc}): grant it to your user "
                                f"(GRANT {settings.serving_role} TO you), or set FRESHREC_SERVING_ROLE= to score "
                                "with your user's own rights.") from None
        raise
    return engine
