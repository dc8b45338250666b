"""freshrec.fine_tune, the stage called directly: a cold start, a warm start from the champion, too few rows."""

import numpy as np
import pandas as pd
import pytest
import torch

from freshrec import generate, ingest, registry
from freshrec.features import side_columns
from freshrec.fine_tune import drift_reference, fine_tune
from freshrec.model import ModelConfig
from freshrec.gate import Decision
from freshrec.settings import load_settings


def test_the_drift_reference_scores_only_held_out_rows_so_both_sides_of_prediction_drift_are_out_of_sample():
    examples = pd.DataFrame({"id": range(100), "label": [0, 1] * 50})
    holdout = examples.iloc[80:].assign(candidate_score=np.linspace(0.1, 0.9, 20))
    whole = drift_reference(examples, holdout, rows=500, seed=0)
    assert sorted(whole["id"]) == list(range(100))  # every row's inputs, when the batch fits
    scored = whole.dropna(subset=["candidate_score"]).set_index("id")["candidate_score"].sort_index()
    assert scored.index.tolist() == list(range(80, 100)) and np.allclose(scored, np.linspace(0.1, 0.9, 20))
    part = drift_reference(examples, holdout, rows=50, seed=0)  # a sample: the held-out rows it drew keep scores
    assert len(part) == 50 and part["candidate_score"].notna().sum() == part["id"].ge(80).sum()


def clean_batch(engine, settings, events: int, seed: int):
    """A pulled batch of the generator's stream without noise: every row is clean (the stage does not validate)."""
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=events, seed=seed))
    pulled = ingest.pull_new_interactions(engine, settings.consumer, 10_000)
    return pulled, pulled.frame


@pytest.mark.train
def test_a_cold_start_trains_within_a_rebases_time_budget_not_a_warm_cycles(engine):
    # a warm cycle's budget (a millisecond here) would end the first model after one step; a new model from the
    # base gets FRESHREC_REBASE_TRAIN_SECONDS, as a rebase does, and trains every fresh row
    settings = load_settings(model="tiny", train_mode="full", max_train_seconds=0.001, rebase_train_seconds=600)
    pulled, clean = clean_batch(engine, settings, 200, 5)
    cold = fine_tune(engine, clean, None, settings, replay_before=pulled.from_cursor)
    assert cold.stats.steps > 1 and cold.stats.stopped_by == "data"
    assert cold.stats.fresh_rows_trained == cold.stats.fresh_rows == 160 and not cold.backlog_add["not_trained"]
    short = fine_tune(engine, clean, None, settings.model_copy(update={"rebase_train_seconds": 0.001}),
                      replay_before=pulled.from_cursor)
    assert short.stats.stopped_by == "max_seconds" and short.stats.fresh_rows_trained < 160


@pytest.mark.train
def test_cold_then_warm_start_trains_on_the_older_rows_and_compares_on_the_newest(engine):
    settings = load_settings(model="tiny", train_mode="full", update_scope="encoder")  # the head-only path: below
    pulled, clean = clean_batch(engine, settings, 400, 3)
    cold = fine_tune(engine, clean.iloc[:200], None, settings, replay_before=pulled.from_cursor)
    assert cold.trained and cold.cold_start and cold.champion_version is None and cold.skip_reason is None
    every, held = set(cold.examples["id"]), set(cold.holdout["id"])
    assert len(every) == 200 and held < every and len(held) == 40  # the newest fifth (FRESHREC_HOLDOUT_SHARE)
    rest = cold.examples[~cold.examples["id"].isin(held)]
    assert cold.holdout["occurred_at"].min() >= rest["occurred_at"].max()
    # every clean row is trained on now, or queued for the next cycle: held out, or beyond the budget
    assert cold.backlog_add["held_out"] == cold.holdout["id"].tolist()
    assert not held & set(cold.backlog_add["not_trained"])
    assert len(cold.backlog_add["not_trained"]) == 160 - cold.stats.fresh_rows_trained
    assert cold.train_rows == 160 and cold.replay_rows == 0  # nothing older than the batch to replay
    assert cold.metrics["candidate"]["n"] == 40 and "champion" not in cold.metrics
    assert len(cold.new_probe) == 200  # the stability guard's probe set, drawn from this batch
    lineage = cold.artifact.config["extra"]["lineage"]
    assert {k: lineage[k] for k in ("kind", "parent")} == {"kind": "cold_start", "parent": None}
    # a new model's wide part is fitted to all its training rows first: one weight per side input, recorded
    assert lineage["wide_fit"]["rows"] == 160 and len(lineage["wide_fit"]["weights"]) == len(side_columns(
        ModelConfig.from_json(cold.artifact.config))) == 8
    assert lineage["wide_fit"]["prior"] == "hand-set"
    # the drift reference: the whole batch's inputs, the candidate's out-of-sample scores on the held-out rows only
    ref = cold.reference.set_index("id")
    assert set(ref.index) == every and ref["candidate_score"].notna().sum() == 40
    assert (ref.loc[sorted(held), "candidate_score"] == cold.holdout.set_index("id").loc[sorted(held),
                                                                                         "candidate_score"]).all()

    with engine.begin() as conn:
        registry.insert_version_and_maybe_promote(
            conn, artifact=cold.artifact, decision=Decision(True, ["test"]), champion_before=None,
            metrics=cold.metrics, batch_ids=[], cycle_id=None, reference_sample=None)
    warm = fine_tune(engine, clean.iloc[200:], registry.load_champion(engine), settings,
                     replay_before=pulled.from_cursor)
    assert warm.trained and not warm.cold_start and warm.champion_version == 1
    # test, then train: the champion scored every new row before the candidate trained on any
    assert warm.examples["champion_score"].notna().all() and warm.metrics["prequential"]["n"] == len(warm.examples)
    assert warm.metrics["champion"]["n"] == warm.metrics["candidate"]["n"] == len(warm.holdout)  # the same rows
    assert {"auc", "logloss"} <= set(warm.metrics["gain"]) and warm.metrics["probe"]["n"] > 0
    lineage = warm.artifact.config["extra"]["lineage"]
    assert {k: lineage[k] for k in ("kind", "parent")} == {"kind": "warm_start", "parent": 1}
    # the wide part continues the running posterior (the newest attempt's) with the fresh rows
    fit = lineage["wide_fit"]
    assert fit["prior"] == "running" and fit["rows"] == warm.stats.fresh_rows == 160
    assert fit["rows_total"] == 160 + fit["rows"]
    assert warm.artifact.config["extra"]["wide_posterior"]["rows"] == fit["rows_total"]

    # a rejected candidate's rows still count: the next candidate continues from its posterior
    with engine.begin() as conn:
        registry.insert_version_and_maybe_promote(
            conn, artifact=warm.artifact, decision=Decision(False, ["test"]), champion_before=1,
            metrics=warm.metrics, batch_ids=[], cycle_id=None, reference_sample=None)
    again = fine_tune(engine, clean.iloc[300:], registry.load_champion(engine), settings,
                      replay_before=pulled.from_cursor)
    fit_again = again.artifact.config["extra"]["lineage"]["wide_fit"]
    assert again.champion_version == 1 and fit_again["rows_total"] == fit["rows_total"] + fit_again["rows"]


def test_a_batch_below_the_minimum_trains_nothing_and_waits_whole(engine):
    settings = load_settings(model="tiny", train_mode="full", min_train_rows=500)
    _, clean = clean_batch(engine, settings, 100, 4)
    outcome = fine_tune(engine, clean, None, settings)
    assert not outcome.trained and outcome.artifact is None and outcome.holdout.empty
    assert f"{len(clean)} clean rows, fewer than the minimum of 500" in outcome.skip_reason
    assert sorted(outcome.backlog_add["below_minimum"]) == sorted(clean["id"].astype(int).tolist())


@pytest.mark.train
def test_a_head_only_warm_start_keeps_the_champions_encoder_and_scores_as_the_champion_would(engine):
    from freshrec.artifacts import load_artifact
    from freshrec.inference import predict
    from freshrec.model import load_tokenizer

    settings = load_settings(model="tiny", train_mode="lora", update_scope="head")
    pulled, clean = clean_batch(engine, settings, 300, 5)
    cold = fine_tune(engine, clean.iloc[:150], None, settings, replay_before=pulled.from_cursor)
    assert "scope" not in cold.artifact.config["extra"]["lineage"]  # a cold start trains the encoder
    with engine.begin() as conn:
        registry.insert_version_and_maybe_promote(
            conn, artifact=cold.artifact, decision=Decision(True, ["test"]), champion_before=None,
            metrics=cold.metrics, batch_ids=[], cycle_id=None, reference_sample=None)
    champion = registry.load_champion(engine)
    warm = fine_tune(engine, clean.iloc[150:], champion, settings, replay_before=pulled.from_cursor)
    lineage = warm.artifact.config["extra"]["lineage"]
    assert warm.trained and {k: lineage.get(k) for k in ("kind", "scope", "parent")} == {
        "kind": "warm_start", "scope": "head", "parent": 1}
    assert warm.stats.fresh_rows_trained == warm.stats.fresh_rows == 120  # cheap rows: every fresh one trains
    old, _ = load_artifact(champion.artifact)
    new, config = load_artifact(warm.artifact.data)
    old_state, new_state = old.state_dict(), new.state_dict()
    assert all(torch.equal(new_state[n], old_state[n]) for n in new_state if n.startswith("encoder."))
    assert any(not torch.equal(new_state[n], old_state[n]) for n in new_state if n.startswith("head."))
    # the cycle's shared embeddings change no score: the stored candidate scores its held-out rows the same
    fresh = predict(new, load_tokenizer("tiny"), config, warm.holdout)
    assert np.allclose(fresh, warm.holdout["candidate_score"], atol=1e-5)
    champion_again = predict(old, load_tokenizer("tiny"), config, warm.examples)
    assert np.allclose(champion_again, warm.examples["champion_score"], atol=1e-5)
    # the champion's embeddings are kept between cycles (embedding_store.py): the same rows again encode nothing,
    # and score exactly as before; with the store off, they are encoded again
    assert warm.metrics["embeddings"]["encoded"] > 0
    again = fine_tune(engine, clean.iloc[150:], champion, settings, replay_before=pulled.from_cursor)
    assert again.metrics["embeddings"]["encoded"] == 0 and again.metrics["embeddings"]["from_store"] > 0
    assert np.array_equal(again.examples["champion_score"], warm.examples["champion_score"])
    off = fine_tune(engine, clean.iloc[150:], champion, settings.model_copy(update={"embedding_cache_rows": 0}),
                    replay_before=pulled.from_cursor)
    assert off.metrics["embeddings"] == {"encoded": warm.metrics["embeddings"]["encoded"], "from_store": 0}
    assert np.allclose(off.examples["champion_score"], warm.examples["champion_score"], atol=1e-6)


@pytest.mark.train
def test_the_gate_judges_on_the_windows_held_out_rows_too_and_trains_none_of_them(engine):
    import sqlalchemy as sa

    settings = load_settings(model="tiny", train_mode="full", gate_window_cycles=2)
    pulled, clean = clean_batch(engine, settings, 400, 7)
    cold = fine_tune(engine, clean.iloc[:200], None, settings, replay_before=pulled.from_cursor)
    assert cold.metrics["gate_rows"] == {"batch": 40, "earlier_cycles": 0,
                                         "users": cold.holdout["user_id"].nunique()}
    with engine.begin() as conn:  # what the cycle's commit does: publish, and queue the held-out rows
        registry.insert_version_and_maybe_promote(
            conn, artifact=cold.artifact, decision=Decision(True, ["test"]), champion_before=None,
            metrics=cold.metrics, batch_ids=[], cycle_id=None, reference_sample=None)
        cycle = conn.execute(sa.text("INSERT INTO update_cycles (consumer) VALUES ('default') RETURNING id")).scalar()
        conn.execute(sa.text("INSERT INTO training_backlog (consumer, interaction_id, reason, cycle_id) "
                             "SELECT 'default', id, 'held_out', :cycle FROM unnest(CAST(:ids AS bigint[])) id"),
                     {"cycle": cycle, "ids": cold.backlog_add["held_out"]})
    warm = fine_tune(engine, clean.iloc[200:], registry.load_champion(engine), settings,
                     replay_before=pulled.from_cursor)
    assert warm.metrics["gate_rows"]["earlier_cycles"] == 40  # the first cycle's held-out rows
    assert warm.metrics["candidate"]["n"] == warm.metrics["champion"]["n"] == len(warm.holdout) + 40
    assert warm.backlog_rows == 0 and warm.backlog_used == []  # still in the window: not trained
    assert warm.backlog_add["held_out"] == warm.holdout["id"].tolist()  # this batch's join the window
    # a rebase (trained from the base on the newest consumed rows, which never include the window's: they wait
    # in the backlog) is judged on the same rows
    rebased = fine_tune(engine, clean.iloc[200:], registry.load_champion(engine), settings,
                        replay_before=pulled.to_cursor, rebase="test")
    assert rebased.metrics["rebase"]["window_rows"] > 0 and rebased.metrics["gate_rows"]["earlier_cycles"] == 40
    assert rebased.metrics["candidate"]["n"] == len(rebased.holdout) + 40
    # its wide part continues the running posterior with the batch's fresh rows, not the window's (already in it)
    fit = rebased.artifact.config["extra"]["lineage"]["wide_fit"]
    assert fit["prior"] == "running" and fit["rows"] == 160 and fit["rows_total"] == 160 + 160


@pytest.mark.train
def test_a_warm_starts_wide_part_learns_from_the_backlog_rows_it_has_not_seen_scored_by_the_champion(engine):
    import sqlalchemy as sa

    # no gate window: the held-out rows queued below are trainable backlog rows now
    settings = load_settings(model="tiny", train_mode="full", update_scope="head", gate_window_cycles=1)
    pulled, clean = clean_batch(engine, settings, 400, 8)
    cold = fine_tune(engine, clean.iloc[:200], None, settings, replay_before=pulled.from_cursor)
    with engine.begin() as conn:  # publish, and queue the held-out rows as the cycle's commit does
        registry.insert_version_and_maybe_promote(
            conn, artifact=cold.artifact, decision=Decision(True, ["test"]), champion_before=None,
            metrics=cold.metrics, batch_ids=[], cycle_id=None, reference_sample=None)
        cycle = conn.execute(sa.text("INSERT INTO update_cycles (consumer) VALUES ('default') RETURNING id")).scalar()
        for reason, ids in (("held_out", cold.backlog_add["held_out"]),  # as a budget that ended early would:
                            ("not_trained", cold.examples["id"].head(10).tolist())):  # these entered the posterior
            conn.execute(sa.text("INSERT INTO training_backlog (consumer, interaction_id, reason, cycle_id) "
                                 "SELECT 'default', id, :reason, :cycle FROM unnest(CAST(:ids AS bigint[])) id"),
                         {"cycle": cycle, "ids": ids, "reason": reason})
    warm = fine_tune(engine, clean.iloc[200:], registry.load_champion(engine), settings,
                     replay_before=pulled.from_cursor)
    assert warm.backlog_rows == 50 and warm.stats.fresh_rows == 160 + 50  # the batch's and the backlog's
    fit = warm.artifact.config["extra"]["lineage"]["wide_fit"]
    assert fit["rows"] == 200 and fit["rows_total"] == 160 + 200  # each row once: not the 10 it has seen
    assert np.isfinite(fit["weights"]).all() and np.isfinite(fit["bias"])  # the backlog rows had an offset



@pytest.mark.train
def test_an_unchanged_champion_does_not_score_the_windows_rows_or_the_probe_again(engine, monkeypatch):
    import sqlalchemy as sa

    from freshrec import fine_tune as stage
    from freshrec.artifacts import load_artifact
    from freshrec.cycles import _keep_champion_scores
    from freshrec.features import build_examples, inputs_read
    from freshrec.inference import predict
    from freshrec.model import load_tokenizer
    from freshrec.trainset import write_probe_set

    settings = load_settings(model="tiny", train_mode="full", update_scope="encoder", gate_window_cycles=2)
    pulled, clean = clean_batch(engine, settings, 800, 9)
    batches = [clean.iloc[k:k + 200] for k in range(0, 800, 200)]

    def commit(outcome, published: bool) -> int:
        """What the cycle's commit does here: the version, the queued held-out rows, the scores they keep."""
        with engine.begin() as conn:
            result = registry.insert_version_and_maybe_promote(
                conn, artifact=outcome.artifact, decision=Decision(published, ["test"]),
                champion_before=outcome.champion_version, metrics=outcome.metrics, batch_ids=[], cycle_id=None,
                reference_sample=None)
            cycle = conn.execute(sa.text("INSERT INTO update_cycles (consumer) VALUES ('default') RETURNING id")
                                 ).scalar()
            conn.execute(sa.text("INSERT INTO training_backlog (consumer, interaction_id, reason, cycle_id) "
                                 "SELECT 'default', id, 'held_out', :cycle FROM unnest(CAST(:ids AS bigint[])) id"),
                         {"cycle": cycle, "ids": outcome.backlog_add["held_out"]})
            _keep_champion_scores(conn, "default", outcome, result)
            if outcome.new_probe is not None:
                write_probe_set(conn, outcome.new_probe)
        return result.version

    def kept() -> pd.DataFrame:
        with engine.connect() as conn:
            return pd.DataFrame(conn.execute(sa.text(
                "SELECT interaction_id AS id, champion_score, scored_by FROM training_backlog")).all()).set_index("id")

    scored_by_champion: list = []  # the ids (None: probe pairs) that anything but the new candidate scored
    candidates: list = []

    def counting_predict(model, tokenizer, config, rows, *args, **kwargs):
        if not candidates or model is not candidates[-1]:
            scored_by_champion.extend(rows["id"].tolist() if "id" in rows else [None] * len(rows))
        return predict(model, tokenizer, config, rows, *args, **kwargs)

    real_train = stage.train

    def remembering_train(model, *args, **kwargs):
        candidates.append(model)
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(stage, "predict", counting_predict)
    monkeypatch.setattr(stage, "train", remembering_train)

    cold = fine_tune(engine, batches[0], None, settings, replay_before=pulled.from_cursor)
    first = commit(cold, True)
    # the published candidate's own scores on its held-out rows are now the champion's
    assert len(kept()) == 40 and (kept()["scored_by"] == first).all()
    assert np.allclose(kept()["champion_score"].sort_index(), cold.holdout.set_index("id")["candidate_score"]
                       .sort_index())

    scored_by_champion.clear()
    warm = fine_tune(engine, batches[1], registry.load_champion(engine), settings, replay_before=pulled.from_cursor)
    window = set(cold.backlog_add["held_out"])
    assert warm.metrics["gate_rows"]["earlier_cycles"] == 40 and not window & set(scored_by_champion)
    # the kept scores are those the champion gives the window's rows now
    champion, config = load_artifact(registry.load_champion(engine).artifact)
    rows = build_examples(engine, clean[clean["id"].isin(window)], settings.training.history_len,
                          **inputs_read(config))
    now = predict(champion, load_tokenizer("tiny"), config, rows)
    assert np.allclose(warm.champion_scores.loc[rows["id"].to_numpy()], now, atol=1e-5)
    assert None in scored_by_champion  # this champion was a cold start: it kept no probe scores, so it scored them
    second = commit(warm, True)
    assert (kept()["scored_by"] == second).all()  # the new champion's scores, on every row the gate judged

    scored_by_champion.clear()
    again = fine_tune(engine, batches[2], registry.load_champion(engine), settings, replay_before=pulled.from_cursor)
    # the champion scored this batch (test-then-train) and nothing else: not the window, not the probe
    assert sorted(scored_by_champion) == sorted(batches[2]["id"].tolist())
    assert again.metrics["probe"]["n"] == 200 and again.metrics["champion"]["n"] == len(again.holdout) + 40
    assert commit(again, False) > second
    assert (kept()["scored_by"] == second).all()  # refused: the kept scores stay the champion's

    with engine.begin() as conn:  # as if the champion had changed since (a rollback, another lineage)
        conn.execute(sa.text("UPDATE training_backlog SET scored_by = scored_by + 100"))
    scored_by_champion.clear()
    fine_tune(engine, batches[3], registry.load_champion(engine), settings, replay_before=pulled.from_cursor)
    assert set(again.backlog_add["held_out"]) <= set(scored_by_champion)


@pytest.mark.train
def test_a_warm_start_reads_no_more_backlog_and_replay_than_the_last_warm_starts_speed_can_train(engine):
    import sqlalchemy as sa

    settings = load_settings(model="tiny", train_mode="full", update_scope="encoder", gate_window_cycles=1,
                             replay_ratio=2.0, max_train_seconds=60)
    pulled, clean = clean_batch(engine, settings, 800, 10)
    older = pulled.to_cursor  # replay may draw from all 800 rows

    def publish(outcome, published: bool = True) -> int:
        with engine.begin() as conn:
            return registry.insert_version_and_maybe_promote(
                conn, artifact=outcome.artifact, decision=Decision(published, ["test"]),
                champion_before=outcome.champion_version, metrics=outcome.metrics, batch_ids=[], cycle_id=None,
                reference_sample=None).version

    def queue(ids) -> None:  # rows a budget left: they wait in the training backlog
        with engine.begin() as conn:
            cycle = conn.execute(sa.text("INSERT INTO update_cycles (consumer) VALUES ('default') RETURNING id")
                                 ).scalar()
            conn.execute(sa.text("INSERT INTO training_backlog (consumer, interaction_id, reason, cycle_id) "
                                 "SELECT 'default', id, 'not_trained', :c FROM unnest(CAST(:ids AS bigint[])) id"),
                         {"c": cycle, "ids": [int(i) for i in ids]})

    publish(fine_tune(engine, clean.iloc[:200], None, settings, replay_before=older))
    queue(clean["id"].iloc[600:700])
    first = fine_tune(engine, clean.iloc[200:400], registry.load_champion(engine), settings, replay_before=older)
    # no warm start before it: the whole backlog, and the ratio's replay
    assert first.backlog_rows == 100 and first.replay_rows == 2 * (160 + 100)
    speed = first.artifact.config["extra"]["last_train"]["examples_per_s"]
    assert speed > 0
    version = publish(first, published=False)  # refused: its speed still counts
    with engine.begin() as conn:  # as if it had trained at 1 example a second
        conn.execute(sa.text("UPDATE model_versions SET config = jsonb_set(config, '{extra,last_train,examples_per_s}',"
                             " '1') WHERE version = :v"), {"v": version})
    queue(clean["id"].iloc[700:800])
    slow = fine_tune(engine, clean.iloc[400:600], registry.load_champion(engine), settings, replay_before=older)
    # 1.5 x 1/s x 60 s = 90 rows in reach, fewer than the batch's 160: no backlog row is read (they wait, all 200),
    # and only the first pass's top-up share is replayed
    assert slow.backlog_rows == 0 and slow.stats.fresh_rows == 160 and slow.replay_rows == 54
