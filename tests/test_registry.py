"""The registry: gated, atomic publishing, rollback, tamper-proof loading, hot swap, least privilege."""

import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa

from freshrec import registry
from freshrec.errors import ModelError
from freshrec.metrics import evaluate, paired_gains
from freshrec.model import build_model, load_tokenizer, save_artifact
from freshrec.gate import Decision, MetricThreshold, PublishPolicy, decide
from freshrec.settings import GateSettings
from freshrec.serving import ChampionWatcher, load_scorer, rank_items, serving_engine
from freshrec.inference import predict
from freshrec.settings import TrainingSettings
from freshrec.trainer import train

from conftest import count
from test_model import config, examples

PUBLISH = Decision(True, ["test"])


@pytest.fixture(scope="module")
def artifact():
    cfg = config("full")
    return save_artifact(build_model(cfg), cfg)


def publish(engine, artifact, champion_before):
    with engine.begin() as conn:
        return registry.insert_version_and_maybe_promote(
            conn, artifact=artifact, decision=PUBLISH, champion_before=champion_before, metrics={}, batch_ids=[],
            cycle_id=None, reference_sample=None)


def champion(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT version FROM model_aliases WHERE alias = 'champion'")).scalar()


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


def test_tampered_artifact_is_refused_when_loading(engine, artifact):
    version = publish(engine, artifact, None).version
    assert load_scorer(engine).version == version
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET artifact = overlay(artifact PLACING '\\x00'::bytea "
                             "FROM 200 FOR 1) WHERE version = :v"), {"v": version})
    with pytest.raises(ModelError, match="altered"):
        load_scorer(engine)


@pytest.mark.slow
@pytest.mark.train
def test_flipped_label_candidate_is_never_published():
    """A champion that learned the pattern, a candidate fine-tuned from it on flipped labels: the gate refuses."""
    cfg = config("full")
    tok = load_tokenizer("tiny")
    champ = build_model(cfg)
    train(champ, tok, cfg, examples(800, 1), TrainingSettings(model="tiny", train_mode="full", learning_rate=3e-3,
                                                         max_train_steps=150, epochs=6))
    cand = build_model(cfg)
    cand.load_state_dict(champ.state_dict())
    flipped = examples(800, 3).assign(label=lambda d: 1 - d["label"])
    train(cand, tok, cfg, flipped, TrainingSettings(model="tiny", train_mode="full", learning_rate=3e-3,
                                               max_train_steps=150, epochs=6))
    held = examples(300, 2)
    users = np.arange(len(held)) % 20
    cand_scores, champ_scores = predict(cand, tok, cfg, held), predict(champ, tok, cfg, held)
    metrics = {"candidate": evaluate(users, held["label"], cand_scores),
               "champion": evaluate(users, held["label"], champ_scores),
               "gain": paired_gains(users, held["label"], cand_scores, champ_scores)}
    d = decide(batch_accepted=True, reject_reason=None, trained=True, skip_reason=None, metrics=metrics,
               has_champion=True, drift=None, policy=PublishPolicy.from_settings(GateSettings()))
    assert metrics["champion"]["auc"] > 0.75, metrics  # the setup: a champion that learned the pattern
    assert not d.publish
    failed = {r.rule for r in d.rules if not r.passed}
    assert "auc_change" in failed and "logloss_change" in failed, (failed, metrics)


def _scored_holdout(users: int, rows_per_user: int, seed: int):
    rng = np.random.default_rng(seed)
    user_ids = np.repeat(np.arange(users), rows_per_user)
    labels = rng.integers(0, 2, len(user_ids))
    champion = 1 / (1 + np.exp(-(labels - 0.5 + rng.normal(0, 1.2, len(labels)))))
    return user_ids, labels, champion, rng


def _judge(user_ids, labels, candidate, champion, drifted: bool):
    from freshrec.drift import DriftResult

    metrics = {"candidate": evaluate(user_ids, labels, candidate), "champion": evaluate(user_ids, labels, champion),
               "gain": paired_gains(user_ids, labels, candidate, champion, confidence=0.9)}
    policy = PublishPolicy.from_settings(GateSettings(), thresholds=(MetricThreshold("auc", True, None, -0.01),))
    return decide(batch_accepted=True, reject_reason=None, trained=True, skip_reason=None, metrics=metrics,
                  has_champion=True, drift=DriftResult("measured", dataset_drift=drifted), policy=policy), metrics


@pytest.mark.unit
def test_gate_judges_the_bootstrap_bound_not_the_point_difference():
    user_ids, labels, champion, rng = _scored_holdout(40, 10, 0)
    # the same model: non-inferior without drift; after drift it is not ahead
    same, _ = _judge(user_ids, labels, champion, champion, drifted=False)
    assert same.publish
    same_drift, _ = _judge(user_ids, labels, champion, champion, drifted=True)
    assert not same_drift.publish
    # a candidate whose point loss is within the tolerance (-0.008 > -0.01) but that scrambles four users'
    # scores: the rows do not rule out a loss beyond the tolerance, so it stays out
    shaky = champion.copy()
    four = user_ids < 4
    shaky[four] = np.clip(champion[four] + np.random.default_rng(5).normal(0, 0.2, four.sum()), 0.01, 0.99)
    coin, m = _judge(user_ids, labels, shaky, champion, drifted=False)
    gain = m["gain"]["auc"]
    assert gain["point"] > -0.01 > gain["lower"] and gain["unit"] == "users" and gain["units"] == 40
    assert not coin.publish and "lower 90% bound" in coin.reasons[0]
    # a candidate that really separates better: a win the rows support, also after drift
    better = 1 / (1 + np.exp(-(2.5 * (labels - 0.5) + rng.normal(0, 1.0, len(labels)))))
    win, m = _judge(user_ids, labels, better, champion, drifted=True)
    assert m["gain"]["auc"]["lower"] > 0 and win.publish, win.reasons
    # a flipped one never
    flipped, _ = _judge(user_ids, labels, 1 - champion, champion, drifted=False)
    assert not flipped.publish


@pytest.mark.unit
def test_few_users_resample_rows():
    user_ids, labels, champion, _ = _scored_holdout(1, 200, 1)
    gains = paired_gains(user_ids, labels, champion * 0.9, champion)
    assert gains["auc"]["unit"] == "rows" and gains["auc"]["units"] == 200
    assert gains["logloss"]["point"] != 0


def test_no_thresholds_means_nothing_publishes():
    metrics = {"candidate": {"n": 500, "positives": 250, "auc": 0.99, "logloss": 0.1, "significant": True}}
    d = decide(batch_accepted=True, reject_reason=None, trained=True, skip_reason=None, metrics=metrics,
               has_champion=False, drift=None, policy=PublishPolicy.from_settings(GateSettings(), thresholds=()))
    assert not d.publish and "no publish thresholds configured" in d.reasons[0]


def test_drift_raises_the_bar_and_explains_instability():
    from freshrec.drift import DriftResult

    metrics = {"candidate": {"n": 500, "positives": 250, "auc": 0.700, "logloss": 0.60, "significant": True},
               "champion": {"n": 500, "positives": 250, "auc": 0.705, "logloss": 0.61, "significant": True},
               "probe": {"n": 100, "mean_abs_change": 0.3, "max_abs_change": 0.5}}
    policy = PublishPolicy.from_settings(GateSettings(), thresholds=(MetricThreshold("auc", True, 0.55, -0.01),))
    calm = decide(batch_accepted=True, reject_reason=None, trained=True, skip_reason=None, metrics=metrics,
                  has_champion=True, drift=DriftResult("measured"), policy=policy)
    assert {r.rule: r.passed for r in calm.rules} == {"min_eval_rows": True, "auc_value": True, "auc_change": True,
                                                      "stability": False}
    drifted = decide(batch_accepted=True, reject_reason=None, trained=True, skip_reason=None, metrics=metrics,
                     has_champion=True, drift=DriftResult("measured", dataset_drift=True), policy=policy)
    rules = {r.rule: r.passed for r in drifted.rules}
    assert rules["auc_beats_champion"] is False and rules["stability"] is True and drifted.drift_explains


def test_watcher_swaps_on_publish_and_survives_a_reconnect(engine, database_url, artifact):
    v1 = publish(engine, artifact, None).version
    watcher = ChampionWatcher(serving_engine(database_url), recheck_s=60).start()
    try:
        _wait(lambda: watcher.scorer is not None and watcher.scorer.version == v1)
        old = watcher.scorer
        v2 = publish(engine, artifact, v1).version
        _wait(lambda: watcher.scorer.version == v2)
        assert old.version == v1  # the old scorer object was replaced, not modified
        # the database drops the watcher's connection; it reconnects and still sees the next publish
        with engine.begin() as conn:
            killed = conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                          "WHERE application_name = 'freshrec-serving' AND query LIKE 'LISTEN%'"))
            assert any(killed.scalars())
        v3 = publish(engine, artifact, v2).version
        _wait(lambda: watcher.scorer.version == v3)
        assert watcher.reconnects >= 1 and watcher.swaps == 3
    finally:
        watcher.stop()


def _wait(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_serving_role_reads_but_cannot_write(engine, database_url, artifact):
    publish(engine, artifact, None)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title, category) VALUES (1, 'football guide', 'sports'), "
                             "(2, 'guitar review', 'music')"))
    reader = serving_engine(database_url)
    with reader.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar() == "freshrec_serving"
    ranked = rank_items(reader, load_scorer(reader), user_id=1, top=2)
    assert {r["item_id"] for r in ranked} == {1, 2}
    for statement in ("INSERT INTO items (id, title) VALUES (3, 'x')",
                      "UPDATE model_aliases SET version = version",
                      "DELETE FROM model_versions",
                      "INSERT INTO update_cycles (consumer) VALUES ('x')"):
        with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text(statement))
    reader.dispose()


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


@pytest.mark.slow
def test_a_cycle_without_thresholds_publishes_nothing_and_stores_why(prefect_harness, env, engine):
    from flows.update import freshrec_update
    from freshrec import generate

    env.setenv("FRESHREC_PUBLISH_THRESHOLDS", "[]")
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=200, seed=1))
    summary = freshrec_update(catch_up=False)
    assert summary["trained"] and not summary["decision"]["published"]
    assert "no publish thresholds configured" in summary["decision"]["reasons"][0]
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT outcome, candidate_version, reasons FROM publish_decisions")).one()
    assert row.outcome == "rejected" and row.candidate_version == 1 and "no publish thresholds" in row.reasons[0]
    assert champion(engine) is None


def test_cli_models_and_score(engine, database_url, artifact):
    import json
    import os
    import subprocess
    import sys

    v1 = publish(engine, artifact, None).version
    v2 = publish(engine, artifact, v1).version
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title, category) VALUES (1, 'football guide', 'sports'), "
                             "(2, 'guitar review', 'music'), (3, 'pasta recipe', 'cooking')"))
    env = {**os.environ, "FRESHREC_DATABASE_URL": database_url}

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", *args, "--json"], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert [m["version"] for m in cli("models", "list")["models"]] == [v2, v1]
    assert cli("models", "show", str(v2))["parent_version"] == v1
    assert cli("models", "rollback") == {"champion": v1, "previous": v2}
    ranked = cli("score", "--user", "7", "--items", "1", "--items", "3", "--top", "5")
    assert ranked["version"] == v1 and {r["item_id"] for r in ranked["items"]} == {1, 3}
    assert cli("models", "promote", str(v2))["champion"] == v2
