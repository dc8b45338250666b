"""Registry trust: promote checks the bytes first, artifacts name only allowed base models, the watcher's
reconnect backoff starts again after a successful reconnect."""

import dataclasses
import time

import pytest
import sqlalchemy as sa

from freshrec import registry
from freshrec.errors import ModelError
from freshrec.model import build_model, check_base_model, save_artifact
from freshrec.serving import ChampionWatcher, load_scorer, serving_engine
from freshrec.settings import load_settings

from test_model import config
from test_registry import champion, publish


@pytest.fixture(scope="module")
def artifact():
    cfg = config("full")
    return save_artifact(build_model(cfg), cfg)


@pytest.fixture(scope="module")
def foreign_artifact(tmp_path_factory):
    """An artifact whose header names a base model folder this deployment never configured."""
    cfg = config("full")
    folder = tmp_path_factory.mktemp("someone-elses-model")
    return save_artifact(build_model(cfg), dataclasses.replace(cfg, base_model=str(folder))), str(folder)


def tamper(engine, version):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET artifact = overlay(artifact PLACING '\\x00'::bytea "
                             "FROM 200 FOR 1) WHERE version = :v"), {"v": version})


def alias_moves(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM model_alias_history")).scalar_one()


def test_promote_and_rollback_verify_the_bytes_before_moving_the_champion(engine, artifact):
    v1 = publish(engine, artifact, None).version
    v2 = publish(engine, artifact, v1).version
    tamper(engine, v1)
    moves = alias_moves(engine)
    with pytest.raises(ModelError, match=f"version {v1}'s bytes have sha256 .* they were altered"):
        registry.promote(engine, v1)
    with pytest.raises(ModelError, match="they were altered"):
        registry.rollback(engine)
    assert champion(engine) == v2 and alias_moves(engine) == moves  # nothing moved
    v3 = publish(engine, artifact, v2).version
    assert registry.promote(engine, v2)["changed"] and champion(engine) == v2  # intact bytes still promote
    assert v3 != v2


def test_cli_promote_of_altered_bytes_is_one_sentence(engine, database_url, artifact, tmp_path):
    import os
    import subprocess
    import sys

    v1 = publish(engine, artifact, None).version
    v2 = publish(engine, artifact, v1).version
    tamper(engine, v1)
    proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "models", "promote", str(v1)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FRESHREC_DATABASE_URL": database_url,
                               "FRESHREC_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [
        ln for ln in proc.stderr.splitlines() if ln.startswith("error: Model version")]
    assert champion(engine) == v2


def test_artifacts_may_only_name_allowed_base_models(engine, foreign_artifact, monkeypatch):
    art, folder = foreign_artifact
    version = publish(engine, art, None).version  # e.g. written by whoever can write the registry
    with pytest.raises(ModelError, match="does not allow"):
        load_scorer(engine)  # packaged models only by default
    with pytest.raises(ModelError, match="FRESHREC_ALLOWED_BASE_MODELS"):
        registry.load_champion(engine, allowed_base_models=load_settings(model="tiny").base_models_allowed)
    with pytest.raises(ModelError, match="does not allow"):
        registry.promote(engine, version, allowed_base_models=("tiny",))
    monkeypatch.setenv("FRESHREC_ALLOWED_BASE_MODELS", f'["{folder}/"]')  # a path compares resolved
    allowed = load_settings().base_models_allowed
    assert registry.load_champion(engine, allowed_base_models=allowed).version == version
    check_base_model(folder, (folder,))
    check_base_model("tiny", None)
    with pytest.raises(ModelError):
        check_base_model("/elsewhere", (folder,))


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_watcher_backoff_grows_while_down_and_starts_again_after_a_reconnect(engine, database_url, artifact):
    down = ChampionWatcher(serving_engine("postgresql://postgres@127.0.0.1:1/nowhere", None)).start()
    try:
        _wait(lambda: len(down.backoffs) >= 3)
    finally:
        down.stop()
    assert down.backoffs[:3] == [0.5, 1.0, 2.0]  # consecutive failures back off

    v1 = publish(engine, artifact, None).version
    watcher = ChampionWatcher(serving_engine(database_url), recheck_s=60).start()
    try:
        for kill in range(3):  # the connection is dropped each time after the watcher reconnected
            _wait(lambda: watcher._listening and watcher.scorer is not None and watcher.scorer.version == v1)
            with engine.begin() as conn:
                killed = conn.execute(sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'freshrec-serving' AND query LIKE 'LISTEN%'")).scalars().all()
            assert any(killed)
            _wait(lambda: watcher.reconnects == kill + 1)
        assert watcher.backoffs == [0.5, 0.5, 0.5]  # not 0.5, 1, 2: each reconnect succeeded
    finally:
        watcher.stop()
