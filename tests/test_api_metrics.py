"""freshrec.api_metrics: the Prometheus families a scrape computes from the process and the database."""

from freshrec import generate, ingest, quality
from freshrec.api_metrics import ServiceMetrics
from freshrec.cycles import begin_cycle, commit_batch
from freshrec.db import create_engine
from freshrec.ranking import RankingService

from helpers import RULES, metric





def test_a_scrape_reads_the_lag_and_the_last_cycle_from_the_database_each_time(engine):
    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=120, seed=5))
    metrics = ServiceMetrics(RankingService(engine), engine, "default", 60.0)
    text = metrics.render().decode()
    assert metric(text, "freshrec_champion_version") == 0  # nothing loaded: the watcher was not started
    assert metric(text, "freshrec_champion_swaps_total") == 0 and metric(text, "freshrec_catalogue_items") == 0
    assert metric(text, "freshrec_database_up") == 1 and metric(text, "freshrec_lag_rows") == 120
    assert "freshrec_last_cycle_id" not in text  # no cycle yet
    pulled = ingest.pull_new_interactions(engine, "default", 100)
    cycle_id = begin_cycle(engine, "default")
    commit_batch(engine, cycle_id, pulled, quality.check_batch(engine, pulled, RULES))
    text = metrics.render().decode()  # the same collector: the figures are read again at each scrape
    assert metric(text, "freshrec_lag_rows") == 20 and metric(text, "freshrec_last_cycle_id") == cycle_id
    assert metric(text, "freshrec_last_cycle_info", '{status="completed"}') == 1
    assert metric(text, "freshrec_last_cycle_published") == 0
    assert metric(text, "freshrec_last_cycle_timestamp_seconds") > 1.7e9
    metrics.latency.labels("GET", "/healthz", "200").observe(0.003)
    assert metric(metrics.render().decode(), "freshrec_request_duration_seconds_count",
                  '{method="GET",route="/healthz",status="200"}') == 1


def test_a_scrape_without_the_database_still_answers_and_says_so():
    gone = create_engine("postgresql://postgres@127.0.0.1:1/nowhere")
    text = ServiceMetrics(RankingService(gone), gone, "default", 60.0).render().decode()
    assert metric(text, "freshrec_database_up") == 0 and metric(text, "freshrec_champion_version") == 0
    assert "freshrec_lag_rows" not in text
