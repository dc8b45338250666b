"""freshrec.registry: gated, atomic publishing, rollback through the history, pruning rejected bytes, promote and
rollback verifying the bytes first, and artifacts that may name only allowed base models."""

import dataclasses
import threading

import pytest
import sqlalchemy as sa

from freshrec import registry
from freshrec.errors import ModelError
from freshrec.gate import Decision
from freshrec.model import build_model, check_base_model
from freshrec.artifacts import save_artifact
from freshrec.serving import load_scorer
from freshrec.settings import load_settings

from conftest import count
from helpers import PUBLISH, champion, config, publish, tamper


@pytest.fixture(scope="module")
def foreign_artifact(tmp_path_factory):
    """An artifact whose header names a base model folder this deployment never configured."""
    cfg = config("full")
    folder = tmp_path_factory.mktemp("someone-elses-model")
    return save_artifact(build_model(cfg), dataclasses.replace(cfg, base_model=str(folder))), str(folder)


def alias_moves(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM model_alias_history")).scalar_one()


def race(engine, artifact, champion_before):
    """Two publishes that both read the same champion, committed at the same moment."""
    barrier = threading.Barrier(2)
    results = []

    def racer():
        with engine.begin() as conn:
            barrier.wait()
            results.append(registry.insert_version_and_maybe_promote(
                conn, artifact=artifact, decision=PUBLISH, champion_before=champion_before, metrics={},
                batch_ids=[], cycle_id=None, reference_sample=None))

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_publishes_against_one_champion_one_wins(engine, artifact):
    first = publish(engine, artifact, None)
    results = race(engine, artifact, first.version)
    assert sorted(r.status for r in results) == ["lost_race", "published"]
    winner = next(r for r in results if r.status == "published")
    assert champion(engine) == winner.version
    assert count(engine, "model_alias_history") == 2  # the first publish and the winner
    assert count(engine, "model_versions", "status = 'lost_race' AND reason LIKE 'lost the race%'") == 1


def test_first_champion_race_has_one_winner(engine, artifact):
    assert sorted(r.status for r in race(engine, artifact, None)) == ["lost_race", "published"]


def test_rollback_walks_back_through_the_history(engine, artifact):
    v1 = publish(engine, artifact, None).version
    v2 = publish(engine, artifact, v1).version
    v3 = publish(engine, artifact, v2).version
    assert registry.rollback(engine) == {"champion": v2, "previous": v3}
    assert registry.rollback(engine) == {"champion": v1, "previous": v2}
    with pytest.raises(ModelError, match="no earlier champion"):
        registry.rollback(engine)
    assert registry.promote(engine, v3)["changed"] and champion(engine) == v3
    assert registry.rollback(engine)["champion"] == v1  # the promotion is undone, back to the one before it
    with engine.connect() as conn:
        actions = conn.execute(sa.text("SELECT action FROM model_alias_history ORDER BY id")).scalars().all()
    assert actions == ["publish", "publish", "publish", "rollback", "rollback", "promote", "rollback"]
    with pytest.raises(ModelError, match="does not exist"):
        registry.promote(engine, 999)


def test_rejected_bytes_are_pruned_but_never_a_version_history_needs(engine, artifact):
    reject = Decision(False, ["worse"])

    def rejected(champion_before):
        with engine.begin() as conn:
            return registry.insert_version_and_maybe_promote(
                conn, artifact=artifact, decision=reject, champion_before=champion_before, metrics={}, batch_ids=[],
                cycle_id=None, reference_sample=None, keep_rejected=2).version

    v1 = publish(engine, artifact, None).version
    r1 = rejected(v1)
    registry.promote(engine, r1)  # a once-rejected version, promoted by hand: the alias history needs it
    registry.promote(engine, v1)
    r2, r3, r4, r5 = (rejected(v1) for _ in range(4))
    kept = {m["version"]: m["has_artifact"] for m in registry.list_models(engine)}
    assert kept[v1] and kept[r1]  # published, or in the alias history
    assert not kept[r2] and not kept[r3]  # older rejected ones lose their bytes ...
    assert kept[r4] and kept[r5] and len(kept) == 6  # ... the newest keep them, and every record stays
    with pytest.raises(ModelError, match="pruned"):
        registry.promote(engine, r2)


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


def test_a_version_without_a_drift_reference_adopts_one_once(engine, artifact):
    first = publish(engine, artifact, None)  # as a cold start is published: no reference
    with engine.begin() as conn:
        assert registry.adopt_reference(conn, first.version, [{"prediction": 0.25, "label": "1"}])
    with engine.begin() as conn:  # a later cycle's batch never replaces it
        assert not registry.adopt_reference(conn, first.version, [{"prediction": 0.75, "label": "0"}])
    assert registry.load_champion(engine).reference_sample == [{"prediction": 0.25, "label": "1"}]
