"""The update step: LR control, backlog carry-over, bounded replay, metrics, offline models."""

import socket

import numpy as np
import pytest
import sqlalchemy as sa

from freshrec import generate, ingest
from freshrec.metrics import evaluate, ndcg_at_k
from freshrec.settings import TrainingSettings
from freshrec.trainer import LR_FLOOR, LrState, train
from freshrec.trainset import replay_sample, replay_seed

from conftest import count, publish_everything
from test_model import config, examples


def test_lr_shrinks_after_a_worse_candidate_and_recovers_slowly():
    s = LrState.initial(1e-3, None)
    assert s == LrState(1e-3, 1e-3)
    worse = s.after(candidate_loss=0.70, champion_loss=0.65)
    assert worse.lr == pytest.approx(5e-4)
    assert worse.after(0.60, 0.65).lr == pytest.approx(6.25e-4)  # recovers by 1.25x ...
    assert LrState(9e-4, 1e-3).after(0.60, 0.65).lr == pytest.approx(1e-3)  # ... never above the base
    low = LrState(1e-3 * LR_FLOOR, 1e-3)
    assert low.after(0.9, 0.1).lr == pytest.approx(1e-3 * LR_FLOOR)  # never below the floor
    assert s.after(None, 0.5) == s  # no champion: nothing to compare
    assert LrState.initial(2e-3, {"lr": 1e-4, "base_lr": 1e-3}) == LrState(2e-3, 2e-3)  # new base: start over
    assert LrState.initial(1e-3, {"lr": 1e-4, "base_lr": 1e-3}) == LrState(1e-4, 1e-3)


@pytest.mark.train
def test_gradient_accumulation_counts_optimizer_steps():
    from freshrec.model import build_model, load_tokenizer

    cfg = config("full")
    stats = train(build_model(cfg), load_tokenizer("tiny"), cfg, examples(256, 0),
                  TrainingSettings(model="tiny", train_mode="full", batch_size=32, grad_accum_steps=4, epochs=1))
    assert (stats.steps, stats.examples) == (2, 256)


def test_ndcg_counts_only_users_with_both_classes():
    users = [1, 1, 1, 2, 2, 3, 3]
    labels = [1, 0, 0, 1, 1, 0, 0]
    perfect = [0.9, 0.1, 0.2, 0.5, 0.6, 0.3, 0.4]
    assert ndcg_at_k(users, labels, perfect) == (1.0, 1)
    worst = [0.1, 0.9, 0.8, 0.5, 0.6, 0.3, 0.4]
    value, n = ndcg_at_k(users, labels, worst)
    assert n == 1 and value == pytest.approx(1 / np.log2(4))
    m = evaluate(users, labels, perfect, min_rows=100)
    assert m["n"] == 7 and not m["significant"] and m["ndcg_users"] == 1


def test_holdout_modes_spread_the_gate_over_users_and_keep_time_order():
    import pandas as pd

    from freshrec.features import split_holdout

    # one heavy user whose session is the newest fifth of the batch, and nine light users before them
    users = [u for u in range(1, 10) for _ in range(8)] + [0] * 128
    batch = pd.DataFrame({"id": np.arange(200), "user_id": users,
                          "occurred_at": pd.date_range("2026-01-01", periods=200, freq="s", tz="UTC")})
    batch = batch.sample(frac=1, random_state=0)  # arrival order is not time order
    splits = {mode: split_holdout(batch, 0.2, mode, seed=3) for mode in ("newest", "newest_per_user", "users")}
    for train_part, held in splits.values():
        assert sorted([*train_part["id"], *held["id"]]) == list(range(200))  # every row on exactly one side
        assert train_part["occurred_at"].is_monotonic_increasing and held["occurred_at"].is_monotonic_increasing
    assert set(splits["newest"][1]["user_id"]) == {0}  # the newest 40 rows are the heavy user's
    per_user = splits["newest_per_user"][1]
    assert set(per_user["user_id"]) == set(range(10)) and len(per_user) == 9 * 2 + 26
    for user, rows in per_user.groupby("user_id"):  # each user's own newest rows
        assert rows["id"].min() > batch.loc[(batch["user_id"] == user) & ~batch["id"].isin(rows["id"]), "id"].max()
    train_part, held = splits["users"]
    assert 0 not in set(held["user_id"]) and len(held) == 40  # whole light users, the heavy one never fits
    assert not set(held["user_id"]) & set(train_part["user_id"])
    only_one_user = batch.assign(user_id=7)
    assert len(split_holdout(only_one_user, 0.2, "users")[1]) == 40  # nobody else: each user's newest share
    with pytest.raises(ValueError, match="unknown holdout mode"):
        split_holdout(batch, 0.2, "random")


def test_category_rate_counts_only_the_users_earlier_rows_in_each_category(engine):
    import pandas as pd

    from freshrec.features import CATEGORY_RATE, RATE_PRIOR_WEIGHT, category_rate, item_categories, \
        point_in_time_rates
    from freshrec.sqlfiles import query

    assert item_categories(" Comedy ,Drama, ") == ["Comedy", "Drama"] and item_categories("") == []
    categories = {1: "Drama", 2: "Comedy, Drama", 3: "Horror", 4: ""}
    events = [  # user, item, label, second
        (1, 1, 1, 0), (1, 2, 1, 0), (1, 3, 0, 10), (1, 2, 0, 20), (2, 1, 0, 20), (1, 4, 1, 30), (1, 1, 1, 40),
        (1, 3, None, 50)]  # a row without a valid label counts for nobody
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    with engine.begin() as conn:
        conn.execute(query("insert_items"), {"ids": list(categories), "titles": [f"t{i}" for i in categories],
                                             "descriptions": [""] * 4, "categories": list(categories.values())})
        conn.execute(query("insert_interactions"), {
            "user_ids": [e[0] for e in events], "item_ids": [e[1] for e in events], "event_types": ["click"] * 8,
            "labels": [e[2] for e in events], "dwell_ms": [None] * 8,
            "occurred_at": [(t0 + pd.Timedelta(seconds=e[3])).to_pydatetime() for e in events]})
        frame = pd.read_sql("SELECT id, user_id, item_id, occurred_at FROM interactions ORDER BY id", conn)
    got = point_in_time_rates(engine, frame)

    def expected(row) -> float:  # the definition, by brute force over the events
        earlier = [e for e in events if e[0] == row.user_id and e[3] < events[row.Index][3] and e[2] is not None]
        w = RATE_PRIOR_WEIGHT
        overall = (sum(e[2] for e in earlier) + 0.5 * w) / (len(earlier) + w)
        per_category = [(len(hits), sum(e[2] for e in hits)) for c in item_categories(categories[row.item_id])
                        for hits in [[e for e in earlier if c in item_categories(categories[e[1]])]]]
        return category_rate(overall, per_category)

    np.testing.assert_allclose(got[CATEGORY_RATE], [expected(r) for r in frame.itertuples()])
    assert got[CATEGORY_RATE].iloc[1] == 0.5  # the same second as the only earlier row: nothing seen yet
    assert got[CATEGORY_RATE].iloc[5] == got["user_rate"].iloc[5]  # an item without categories
    # dramas: two liked of three before, and a horror film disliked: this drama row sits above the user's average
    assert got[CATEGORY_RATE].iloc[6] > got["user_rate"].iloc[6]
    assert got[CATEGORY_RATE].iloc[7] < got["user_rate"].iloc[7]  # and the horror row below it


def test_replay_is_bounded_and_skips_quarantined_and_waiting_rows(engine):
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=2000, seed=3))
    cursor = ingest.Cursor(*engine.connect().execute(sa.text(
        "SELECT CAST(max(txid) AS text), max(id) FROM interactions")).one())
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE interactions"))
        conn.execute(sa.text("INSERT INTO update_cycles (consumer) VALUES ('default')"))
        conn.execute(sa.text("INSERT INTO ingest_batches (consumer, cycle_id, from_txid, from_id, to_txid, to_id, "
                             "row_count, clean_count, quarantined_count, status) VALUES ('default', 1, '0', 0, '0', "
                             "0, 0, 0, 0, 'accepted')"))
        conn.execute(sa.text("INSERT INTO quarantine (consumer, interaction_id, batch_id, reasons, row_data) "
                             "SELECT 'default', g, 1, ARRAY['bad_label'], '{}' FROM generate_series(1, 1000) g"))
        conn.execute(sa.text("INSERT INTO training_backlog (consumer, interaction_id, reason, cycle_id) "
                             "SELECT 'default', g, 'held_out', 1 FROM generate_series(1001, 1500) g"))
    sample = replay_sample(engine, "default", cursor, 120, seed=1)
    assert 0 < len(sample) <= 120
    assert sample["id"].min() > 1500  # neither quarantined nor waiting rows are replayed
    assert replay_sample(engine, "default", cursor, 0, seed=1).empty


def test_replay_draws_from_the_whole_history_and_changes_every_cycle(engine):
    # Regression: a bare LIMIT on the over-drawn table sample kept the oldest stored rows, and a fixed seed
    # replayed the same rows every cycle.
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=4000, seed=3))
    last_txid, last_id = engine.connect().execute(sa.text(
        "SELECT CAST(max(txid) AS text), max(id) FROM interactions")).one()
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE interactions"))
    cursor = ingest.Cursor(last_txid, last_id)
    first = replay_sample(engine, "default", cursor, 200, seed=replay_seed(0, cursor))
    assert len(first) == 200
    assert first["id"].median() > 0.3 * last_id, "the draw is skewed towards the oldest rows"
    assert first["id"].max() > 0.8 * last_id
    later = ingest.Cursor(last_txid, last_id - 1)
    second = replay_sample(engine, "default", later, 200, seed=replay_seed(0, later))
    assert len(set(first["id"]) & set(second["id"])) < 100, "two cycles replayed mostly the same rows"
    again = replay_sample(engine, "default", cursor, 200, seed=replay_seed(0, cursor))
    assert again["id"].tolist() == first["id"].tolist()  # reproducible for the same cursor


def _cycle():
    from flows.update import freshrec_update

    return freshrec_update(catch_up=False)


@pytest.mark.slow
def test_small_batch_waits_and_trains_next_time(prefect_harness, env, engine):
    env.setenv("FRESHREC_MIN_TRAIN_ROWS", "50")
    publish_everything(env)
    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=30, seed=1))
    small = _cycle()
    assert not small["trained"] and "fewer than the minimum of 50" in small["train"]["skip_reason"]
    waiting = small["rows_clean"]
    assert waiting > 20 and count(engine, "training_backlog", "reason = 'below_minimum'") == waiting
    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=100, seed=2))
    big = _cycle()
    held_out = big["train"]["holdout_rows"]
    assert big["trained"] and big["train"]["backlog_rows"] == waiting
    # the waiting rows, the older part of the new batch (and replay)
    assert big["train"]["rows"] >= waiting + big["rows_clean"] - held_out
    # the trained rows left the queue; the new held-out slice joined it
    assert count(engine, "training_backlog", "reason = 'below_minimum'") == 0
    assert count(engine, "training_backlog", "reason = 'held_out'") == held_out == -(-big["rows_clean"] // 5)
    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=100, seed=3))
    assert _cycle()["train"]["backlog_rows"] == held_out  # last cycle's held-out rows are trained on now


@pytest.mark.unit
def test_first_pass_covers_every_fresh_row_before_replay_repeats():
    from freshrec.trainer import FIRST_PASS_REPLAY_SHARE, batch_order

    n, fresh, size = 300, 100, 32
    batches = batch_order(n, fresh, size, epochs=2, rng=np.random.default_rng(0))
    take = size - round(size * FIRST_PASS_REPLAY_SHARE)
    first_pass = batches[:-(-fresh // take)]
    covered = np.concatenate(first_pass)
    assert set(range(fresh)) <= set(covered.tolist())  # every fresh row in the first steps
    assert all(len(b) <= size for b in batches)
    assert all((b >= fresh).any() for b in first_pass)  # no step of only the present
    # the first epoch takes every row exactly once, replay included; the second is a plain shuffle of all
    second_epoch = -(-n // size)
    assert sorted(np.concatenate(batches[:-second_epoch]).tolist()) == list(range(n))
    assert sorted(np.concatenate(batches[-second_epoch:]).tolist()) == list(range(n))
    # no fresh rows: a plain shuffle
    plain = np.concatenate(batch_order(50, 0, 16, 1, np.random.default_rng(1)))
    assert sorted(plain.tolist()) == list(range(50))


@pytest.mark.slow
def test_fresh_rows_beyond_the_budget_are_trained_first_next_cycle(prefect_harness, env, engine):
    publish_everything(env)
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=200, seed=10))
    assert _cycle()["train"]["fresh_coverage"] == 1.0  # the default budget covers a small batch
    env.setenv("FRESHREC_MAX_TRAIN_STEPS", "3")
    env.setenv("FRESHREC_BATCH_SIZE", "16")
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=400, seed=11))
    limited = _cycle()
    train_info = limited["train"]
    fresh = train_info["fresh_rows"]
    assert train_info["replay_rows"] > 0 and fresh == train_info["backlog_rows"] + limited["rows_clean"] - \
        train_info["holdout_rows"]
    # 3 steps of 16 rows, 12 of them fresh and 4 replayed: the rest waits, nothing is silently dropped
    assert train_info["fresh_rows_trained"] == 3 * 12 and train_info["fresh_coverage"] < 1
    assert count(engine, "training_backlog", "reason IN ('not_trained', 'held_out')") == \
        fresh - 36 + train_info["holdout_rows"]
    env.setenv("FRESHREC_MAX_TRAIN_STEPS", "1000")
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=100, seed=12))
    catch_up = _cycle()
    assert catch_up["train"]["backlog_rows"] == fresh - 36 + train_info["holdout_rows"]
    assert catch_up["train"]["fresh_coverage"] == 1.0
    assert count(engine, "training_backlog", "reason = 'not_trained'") == 0


@pytest.mark.slow
def test_rebase_trains_from_the_base_on_a_recent_window_and_records_its_lineage(prefect_harness, env, engine):
    from freshrec.rebase import request_rebase

    publish_everything(env)
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=21))
    assert _cycle()["trained"]
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=200, seed=22))
    warm = _cycle()
    assert "rebase" not in warm["metrics"]
    request_rebase(engine, "default", "new settings")
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=200, seed=23))
    rebased = _cycle()
    # the window: older clean rows up to the cursor (not the replay sample), a fresh learning rate
    assert rebased["metrics"]["rebase"]["reason"] == "requested: new settings"
    assert rebased["train"]["replay_rows"] == rebased["metrics"]["rebase"]["window_rows"] > 0
    with engine.connect() as conn:
        lineage = conn.execute(sa.text("SELECT config -> 'extra' -> 'lineage' FROM model_versions "
                                       "ORDER BY version")).scalars().all()
        assert conn.execute(sa.text("SELECT count(*) FROM rebase_requests")).scalar_one() == 0  # taken
    assert [k["kind"] for k in lineage] == ["cold_start", "warm_start", "rebase"]
    assert lineage[2]["parent"] == rebased["decision"]["champion_before"]
    # on a schedule: every 2 candidates since the last rebase
    env.setenv("FRESHREC_REBASE_EVERY", "2")
    kinds = []
    for seed in (24, 25, 26):
        generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=150, seed=seed))
        kinds.append("rebase" in _cycle()["metrics"])
    assert kinds == [False, True, False]


@pytest.mark.slow
def test_learning_rate_state_travels_with_versions(prefect_harness, env, engine):
    publish_everything(env)
    env.setenv("FRESHREC_LEARNING_RATE", "0.002")
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=5))
    first = _cycle()
    assert first["train"]["learning_rate"] == pytest.approx(0.002) and first["train"]["cold_start"]
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=6))
    second = _cycle()
    with engine.connect() as conn:
        states = conn.execute(sa.text("SELECT config -> 'extra' -> 'lr_state' FROM model_versions "
                                      "ORDER BY version")).scalars().all()
    cand, champ = second["metrics"]["candidate"]["logloss"], second["metrics"]["champion"]["logloss"]
    expected = 0.001 if cand > champ else 0.002
    assert states[1]["lr"] == pytest.approx(expected)
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=7))
    assert _cycle()["train"]["learning_rate"] == pytest.approx(expected)


def _publish_then_warm_start(env, engine, **settings: str) -> list[dict]:
    """A cold-start cycle that publishes, then a warm-started one whose champion ranks items, under the given
    FRESHREC_ settings; returns the versions' configs."""
    from freshrec.serving import load_scorer, rank_items

    publish_everything(env)
    for name, value in settings.items():
        env.setenv(name, value)
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=5))
    assert _cycle()["decision"]["version"] == 1
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=6))
    assert _cycle()["trained"]  # warm start, probed with what the probe set stored for this kind of model
    with engine.connect() as conn:
        configs = conn.execute(sa.text("SELECT config FROM model_versions ORDER BY version")).scalars().all()
    ranked = rank_items(engine, load_scorer(engine), user_id=1, top=3)
    assert len(ranked) == 3 and ranked[0]["score"] >= ranked[-1]["score"]
    return configs


@pytest.mark.slow
def test_item_id_models_train_publish_and_rank_through_whole_cycles(prefect_harness, env, engine):
    # with the overall user rate (category rate off), so that input path runs whole cycles too
    configs = _publish_then_warm_start(env, engine, FRESHREC_ID_BUCKETS="64", FRESHREC_CATEGORY_RATE="false")
    with engine.connect() as conn:
        probe_ids = conn.execute(sa.text("SELECT count(*) FROM probe_set WHERE item_id IS NOT NULL "
                                         "AND cardinality(history_item_ids) > 0")).scalar_one()
    assert [c["id_buckets"] for c in configs] == [64, 64] and probe_ids > 0
    assert [c["category_rate"] for c in configs] == [False, False]


@pytest.mark.slow
def test_gate_on_whole_users_holds_them_out_of_this_cycles_training(prefect_harness, env, engine):
    publish_everything(env)
    env.setenv("FRESHREC_HOLDOUT", "users")
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=5))
    first = _cycle()
    with engine.connect() as conn:
        held, rest = (set(conn.execute(sa.text(
            "SELECT DISTINCT user_id FROM interactions WHERE id " + side + " (SELECT interaction_id FROM "
            "training_backlog WHERE reason = 'held_out')")).scalars()) for side in ("IN", "NOT IN"))
    assert first["trained"] and held and rest and not held & rest
    assert 0 < first["train"]["holdout_rows"] <= -(-first["rows_clean"] // 5)


@pytest.mark.slow
def test_new_models_read_the_category_rate_by_default_through_whole_cycles(prefect_harness, env, engine):
    from freshrec.features import CATEGORY_RATE, SIDE_COLUMNS, side_columns
    from freshrec.model import ModelConfig

    configs = _publish_then_warm_start(env, engine)  # no setting: the default
    with engine.connect() as conn:
        probe = conn.execute(sa.text("SELECT count(*), count(*) FILTER (WHERE user_category_rate <> user_rate) "
                                     "FROM probe_set")).one()
    assert [c["category_rate"] for c in configs] == [True, True] and probe[0] > 0 and probe[1] > 0
    assert side_columns(ModelConfig.from_json(configs[1]))[0] == CATEGORY_RATE
    # versions made before (no such field in their config) keep reading the overall rate
    older = ModelConfig.from_json({k: v for k, v in configs[0].items() if k != "category_rate"})
    assert side_columns(older) == SIDE_COLUMNS


def test_models_load_without_the_network(monkeypatch):
    from freshrec.model import build_model, load_tokenizer, new_model_config

    def refuse(self, address):
        raise OSError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    load_tokenizer.cache_clear()
    cfg = new_model_config("minilm", "lora", max_item_tokens=16, max_user_tokens=16, history_len=2, seed=0)
    model = build_model(cfg)
    assert cfg.hidden_size == 384 and sum(p.numel() for p in model.parameters() if p.requires_grad) < 1_000_000  # LoRA + head, not 22M
    assert load_tokenizer("minilm")("hello")["input_ids"][0] == 101
