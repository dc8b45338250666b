"""`freshrec api` through real HTTP: uvicorn on a free loopback port, the serving role, a real PostgreSQL."""

import socket

import httpx
import sqlalchemy as sa
import torch

from bench.api_load import background_server, wait_until
from freshrec import generate, registry
from freshrec.api import create_app
from freshrec.gate import Decision
from freshrec.model import build_model, new_model_config
from freshrec.artifacts import save_artifact
from freshrec.serving import serving_engine

from helpers import metric


def publish(engine, seed: int, champion_before):
    """A random tiny model (its seed makes it differ), published as the champion."""
    cfg = new_model_config("tiny", "full", max_item_tokens=16, max_user_tokens=24, history_len=2, seed=seed,
                           category_rate=True)
    model = build_model(cfg)
    with torch.no_grad():  # an untrained head ranks by the like-rates alone: give each version its own
        generator = torch.Generator().manual_seed(seed)
        for p in model.head.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.5)
    with engine.begin() as conn:
        return registry.insert_version_and_maybe_promote(
            conn, artifact=save_artifact(model, cfg), decision=Decision(True, ["test"]),
            champion_before=champion_before, metrics={}, batch_ids=[], cycle_id=None, reference_sample=None).version


def test_rankings_hot_swap_and_registry_over_http(engine, reader):
    generate.insert_stream(engine, generate.StreamSpec(users=15, items=25, events=300, seed=3))
    app = create_app(reader, catalogue_refresh_s=3600, recheck_s=60)
    with background_server(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"ready": False, "champion_version": None,
                                                             "database": True}
        assert http.get("/users/1/top").status_code == 503
        assert "No champion is loaded yet" in http.get("/users/1/top").json()["error"]

        v1 = publish(engine, 0, None)
        wait_until(lambda: http.get("/readyz").status_code == 200, what="the first champion")
        assert http.get("/readyz").json() == {"ready": True, "champion_version": v1, "database": True}
        first = http.get("/users/1/top", params={"k": 25}).json()
        assert first["version"] == v1 and len(first["items"]) == 25
        scores = [r["score"] for r in first["items"]]
        assert scores == sorted(scores, reverse=True)
        assert len(http.get("/users/1/top").json()["items"]) == 10  # k defaults to 10
        picked = http.get("/users/1/top", params=[("items", 3), ("items", 5), ("k", 10)]).json()
        assert {r["item_id"] for r in picked["items"]} == {3, 5}
        unknown = http.get("/users/1/top", params=[("items", 3), ("items", 999999)])
        assert unknown.status_code == 422 and "999999" in unknown.json()["error"]
        assert http.get("/users/1/top", params={"k": 0}).status_code == 422

        # the catalogue was embedded once for this version, not per request
        text = http.get("/metrics").text
        assert metric(text, "freshrec_champion_item_embeddings") == 25 == metric(text, "freshrec_catalogue_items")
        for user in (2, 3, 4):
            http.get(f"/users/{user}/top")
        assert metric(http.get("/metrics").text, "freshrec_champion_item_embeddings") == 25

        v2 = publish(engine, 1, v1)  # the LISTEN swap
        wait_until(lambda: http.get("/readyz").json()["champion_version"] == v2, what="the swap")
        second = http.get("/users/1/top", params={"k": 25}).json()
        assert second["version"] == v2
        before = {r["item_id"]: r["score"] for r in first["items"]}
        after = {r["item_id"]: r["score"] for r in second["items"]}
        assert before.keys() == after.keys() and before != after  # the other model ranks
        text = http.get("/metrics").text
        assert metric(text, "freshrec_champion_version") == v2
        assert metric(text, "freshrec_champion_swaps_total") == 2
        assert metric(text, "freshrec_champion_item_embeddings") == 25  # again once, for the new version
        assert metric(text, "freshrec_request_duration_seconds_count",
                      '{method="GET",route="/users/{user_id}/top",status="200"}') >= 6
        assert metric(text, "freshrec_lag_rows") == 300  # nothing consumed: no cycle ran
        assert metric(text, "freshrec_database_up") == 1

        models = http.get("/models").json()["models"]
        assert [(m["version"], m["aliases"]) for m in models] == [(v2, ["champion"]), (v1, [])]
        shown = http.get(f"/models/{v2}").json()
        assert shown["parent_version"] == v1 and shown["alias_history"][0]["to_version"] == v2
        assert http.get("/models/999").status_code == 404
        assert http.get("/decisions").json() == {"decisions": []}
        status = http.get("/status").json()
        assert status["interactions"] == 300 and status["lag"]["rows"] == 300 and status["last_cycle"] is None
        assert http.get("/reports").json() == {"reports": []}
        missing = http.get("/reports/12345")
        assert missing.status_code == 404 and "Cycle 12345 has no drift report" in missing.json()["error"]
    with reader.connect() as conn:  # all of it as the read-only role
        assert conn.execute(sa.text("SELECT current_user")).scalar() == "freshrec_serving"


def test_new_items_join_the_catalogue_without_re_embedding_the_rest(engine, reader):
    generate.insert_stream(engine, generate.StreamSpec(users=5, items=10, events=50, seed=2))
    v1 = publish(engine, 0, None)
    app = create_app(reader, catalogue_refresh_s=0, recheck_s=60)
    with background_server(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        wait_until(lambda: http.get("/readyz").status_code == 200, what="the champion")
        assert len(http.get("/users/1/top", params={"k": 100}).json()["items"]) == 10
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO items (id, title, category) VALUES (777, 'a new guide', 'news')"))
        ranked = http.get("/users/1/top", params={"k": 100}).json()
        assert ranked["version"] == v1 and 777 in {r["item_id"] for r in ranked["items"]}
        assert metric(http.get("/metrics").text, "freshrec_champion_item_embeddings") == 11


def test_an_unreachable_database_is_503_not_a_traceback(database_url):
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = sa.engine.make_url(database_url).set(port=port).render_as_string(hide_password=False)
    gone = serving_engine(url)
    with background_server(create_app(gone, recheck_s=60)) as base, httpx.Client(base_url=base, timeout=60) as http:
        assert http.get("/healthz").status_code == 200  # alive, though not ready
        assert http.get("/readyz").json() == {"ready": False, "champion_version": None, "database": False}
        status = http.get("/status")
        assert status.status_code == 503 and status.json()["error"].startswith("The database did not answer")
        assert metric(http.get("/metrics").text, "freshrec_database_up") == 0
    gone.dispose()
