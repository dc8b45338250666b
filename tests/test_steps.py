"""freshrec.steps: the stage functions the flow's tasks and the evaluation share."""

import pytest

from freshrec.gate import PublishPolicy
from freshrec.settings import (DriftSettings, GateSettings, IngestionSettings, QualityRules, ServingSettings, Settings,
                               TrainingSettings)


def _unusual_settings() -> Settings:
    return Settings(model="tiny", train_mode="full", device="cpu", seed=7, learning_rate=3e-4, batch_size=8,
                    gpu_batch_size=64, grad_accum_steps=2, max_backlog_rows=99, max_train_steps=11,
                    max_train_seconds=3.5, epochs=3, holdout_share=0.3, holdout="users", min_train_rows=5,
                    min_eval_rows=7, replay_ratio=0.5, probe_size=12, history_len=2, max_item_tokens=20,
                    max_user_tokens=30, id_buckets=64, category_rate=False, cpu_threads=3, event_types=["click", "skip"],
                    max_dwell_ms=1000, clock_skew_s=9, duplicate_window_s=0.5, bot_events_per_minute=17,
                    batch_reject_share=0.25, publish_thresholds=[{"metric": "auc", "value": 0.6}],
                    max_probe_change=0.3, drift_num_method="psi", drift_cat_method="jensenshannon",
                    drift_num_threshold=0.2, drift_cat_threshold=0.3, drift_monitor_only=["hour", "category"])


@pytest.mark.unit
def test_each_stage_reads_its_group_of_the_one_settings_object():
    settings = _unusual_settings()
    cfg = settings.training
    assert (cfg.seed, cfg.holdout, cfg.id_buckets, cfg.category_rate, cfg.cpu_threads) == (7, "users", 64, False, 3)
    assert (cfg.max_train_steps, cfg.max_train_seconds, cfg.replay_ratio) == (11, 3.5, 0.5)
    rules = settings.quality
    assert (rules.event_types, rules.bot_events_per_minute, rules.batch_reject_share) == (("click", "skip"), 17, 0.25)
    policy = PublishPolicy.from_settings(settings.gate)
    assert (policy.min_eval_rows, policy.max_probe_change, policy.thresholds[0].value) == (7, 0.3, 0.6)
    drift = settings.drift
    assert (drift.drift_num_method, drift.drift_cat_method, drift.drift_num_threshold, drift.drift_cat_threshold) == (
        "psi", "jensenshannon", 0.2, 0.3)
    assert set(drift.drift_monitor_only) == {"hour", "category"}


@pytest.mark.unit
def test_every_setting_lives_in_one_group_and_its_default_once():
    groups = [IngestionSettings, QualityRules, TrainingSettings, DriftSettings, GateSettings, ServingSettings]
    owners: dict[str, list[str]] = {}
    for group in groups:
        for name in group.model_fields:
            owners.setdefault(name, []).append(group.__name__)
    assert all(len(o) == 1 for o in owners.values()), owners
    storage = set(Settings.model_fields) - set(owners)
    assert storage == {"database_url", "data_dir", "embedded_database", "reports_dir"}
    defaults = Settings.model_construct()  # the declared defaults, whatever the environment holds
    for group in groups:  # a group on its own has the same defaults as the whole: they are written once
        assert group().model_dump() == defaults.part(group).model_dump(), group.__name__

