"""Behaviour that takes several whole cycles through Prefect's harness to show: the training backlog, the budget's
fresh rows, rebases, the learning-rate state, item-id and category-rate models, the gate on whole users, a gate
without thresholds, and a drift report opened from its Prefect artifact through `freshrec api`."""

import re

import httpx
import pytest
import sqlalchemy as sa

from bench.api_load import background_server, wait_until
from freshrec import generate
from freshrec.api import create_app
from freshrec.fine_tune import FRESH_BLOCK_BATCHES

from conftest import count, publish_everything
from helpers import champion, metric


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
    # the default gate window (3 cycles): last cycle's held-out rows are judged again, still untrained
    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=100, seed=3))
    third = _cycle()
    assert third["train"]["backlog_rows"] == 0 and third["metrics"]["gate_rows"]["earlier_cycles"] == held_out
    # without a window they train in the next cycle, this one's and the last one's held-out rows together
    env.setenv("FRESHREC_GATE_WINDOW_CYCLES", "1")
    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=100, seed=4))
    fourth = _cycle()
    assert fourth["train"]["backlog_rows"] == held_out + third["train"]["holdout_rows"]
    assert fourth["metrics"]["gate_rows"]["earlier_cycles"] == 0


@pytest.mark.slow
def test_fresh_rows_beyond_the_budget_are_trained_first_next_cycle(prefect_harness, env, engine):
    publish_everything(env)
    env.setenv("FRESHREC_GATE_WINDOW_CYCLES", "1")  # every waiting row may train (the window: the test above)
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=200, seed=10))
    assert _cycle()["train"]["fresh_coverage"] == 1.0  # the default budget covers a small batch
    env.setenv("FRESHREC_MAX_TRAIN_STEPS", "3")
    env.setenv("FRESHREC_BATCH_SIZE", "16")
    with engine.connect() as conn:
        first_new_id = conn.execute(sa.text("SELECT max(id) FROM interactions")).scalar_one()
    waiting_before = count(engine, "training_backlog")  # the first cycle's held-out rows
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=400, seed=11))
    limited = _cycle()
    train_info = limited["train"]
    fresh = train_info["fresh_rows"]
    assert train_info["replay_rows"] > 0 and fresh == train_info["backlog_rows"] + limited["rows_clean"] - \
        train_info["holdout_rows"]
    # 3 steps of 16 rows, 12 of them fresh and 4 replayed: the rest waits, nothing is silently dropped
    assert train_info["fresh_rows_trained"] == 3 * 12 and train_info["fresh_coverage"] < 1
    # the cycle read no more of the backlog than 3 steps can train; what it did not read still waits
    unread = waiting_before - train_info["backlog_rows"]
    waiting = fresh - 36 + train_info["holdout_rows"] + unread
    assert count(engine, "training_backlog", "reason IN ('not_trained', 'held_out')") == waiting
    # newest first: the rows left untrained are older than the trained ones, but for one shuffled block
    with engine.connect() as conn:
        trained_from = conn.execute(sa.text(
            "SELECT min(occurred_at) FROM interactions WHERE id > :first AND id NOT IN "
            "(SELECT interaction_id FROM training_backlog) AND id NOT IN (SELECT interaction_id FROM quarantine)"),
            {"first": first_new_id}).scalar_one()
        newer_untrained = conn.execute(sa.text(
            "SELECT count(*) FROM training_backlog b JOIN interactions x ON x.id = b.interaction_id "
            "WHERE b.reason = 'not_trained' AND x.occurred_at > :t"), {"t": trained_from}).scalar_one()
    assert newer_untrained <= FRESH_BLOCK_BATCHES * 16 - 36
    env.setenv("FRESHREC_MAX_TRAIN_STEPS", "1000")
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=100, seed=12))
    catch_up = _cycle()
    assert catch_up["train"]["backlog_rows"] == waiting and catch_up["train"]["backlog_expired"] == 0
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
    assert [c["recent_rate"] for c in configs] == [True, True]  # the recent rate beside the overall rate


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
def test_new_models_read_every_like_rate_input_by_default_through_whole_cycles(prefect_harness, env, engine):
    from freshrec.features import CATEGORY_RATE, ITEM_QUALITY, RECENT_RATE, SESSION_RATE, SIDE_COLUMNS, side_columns
    from freshrec.model import ModelConfig

    configs = _publish_then_warm_start(env, engine)  # no setting: the default
    with engine.connect() as conn:
        probe = conn.execute(sa.text("SELECT count(*), count(*) FILTER (WHERE user_category_rate <> user_rate), "
                                     "count(*) FILTER (WHERE user_recent_rate <> user_rate), "
                                     "count(*) FILTER (WHERE user_item_quality <> 0.5), "
                                     "count(*) FILTER (WHERE user_session_rate <> user_rate) FROM probe_set")).one()
    assert [c["category_rate"] for c in configs] == [True, True] and probe[0] > 0 and probe[1] > 0
    assert [c["recent_rate"] for c in configs] == [True, True] and probe[2] > 0
    assert [c["item_quality"] for c in configs] == [True, True] and probe[3] > 0
    assert [c["session_rate"] for c in configs] == [True, True] and probe[4] > 0
    assert side_columns(ModelConfig.from_json(configs[1])) == [CATEGORY_RATE, *SIDE_COLUMNS[1:], "user_rate",
                                                               RECENT_RATE, ITEM_QUALITY, SESSION_RATE]
    # versions made before (no such fields in their config) keep reading the overall rate, and none of the rest
    older = ModelConfig.from_json({k: v for k, v in configs[0].items()
                                   if k not in ("category_rate", "recent_rate", "item_quality", "session_rate")})
    assert side_columns(older) == SIDE_COLUMNS


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


@pytest.mark.slow
def test_a_drift_report_opens_from_its_prefect_artifact_link(prefect_harness, env, engine, reader):
    """FRESHREC_PUBLIC_URL set: the artifact links to the service, and the link serves the stored report."""
    from prefect.client.orchestration import get_client
    import uuid

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from flows.update import freshrec_update

    publish_everything(env)
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=500, drift_at=0.5, seed=9))
    env.setenv("FRESHREC_MAX_BATCH_ROWS", "170")
    app = create_app(reader, recheck_s=60)
    with background_server(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        env.setenv("FRESHREC_PUBLIC_URL", base + "/")
        freshrec_update(catch_up=False)
        freshrec_update(catch_up=False)  # the cold-start champion adopts this batch as its drift reference
        second = freshrec_update(catch_up=False)
        assert second["drift"]["status"] == "measured"
        with engine.connect() as conn:  # the second run's report: other tests' runs share the harness's server
            run_id = conn.execute(sa.text("SELECT flow_run_id FROM update_cycles WHERE id = :i"),
                                  {"i": second["cycle_id"]}).scalar_one()
        with get_client(sync_client=True) as client:
            (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["drift-report"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(str(run_id))])))
        link = re.search(r"\((http[^)\s]+)\)", artifact.data).group(1)
        assert link == f"{base}/reports/{second['cycle_id']}"
        page = httpx.get(link, timeout=60)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT html_sha256 FROM drift_reports")).scalar_one()
        assert page.headers["etag"] == f'"{stored}"' and b"<html" in page.content[:2000].lower()
        assert http.get(link, headers={"If-None-Match": f'"{stored}"'}).status_code == 304
        (listed,) = http.get("/reports").json()["reports"]
        assert listed["cycle_id"] == second["cycle_id"] and listed["url"] == f"/reports/{second['cycle_id']}"

        decisions = http.get("/decisions").json()["decisions"]
        assert [d["cycle_id"] for d in decisions] == [second["cycle_id"] - k for k in range(3)]
        text = http.get("/metrics").text
        assert metric(text, "freshrec_last_cycle_id") == second["cycle_id"]
        assert metric(text, "freshrec_last_cycle_info", '{status="completed"}') == 1
        assert metric(text, "freshrec_last_cycle_timestamp_seconds") > 0
        assert metric(text, "freshrec_lag_rows") == 0
        assert metric(text, "freshrec_last_cycle_fresh_coverage") == second["train"]["fresh_coverage"] > 0
        assert metric(text, "freshrec_last_cycle_rows_carried") == second["train"]["queued_for_next_cycle"] > 0
        assert metric(text, "freshrec_last_cycle_backlog_expired") == second["train"]["backlog_expired"] == 0
        champion = http.get("/models").json()["models"][0]
        wait_until(lambda: http.get("/readyz").json()["champion_version"] == champion["version"],
                   what="the published champion")
        assert http.get(f"/models/{champion['version']}").json()["decisions"][0]["outcome"] == "published"
