"""freshrec.gate: the publish rules, judged on the bootstrap bound; drift raises the bar and explains instability;
no thresholds means nothing publishes."""

import numpy as np
import pytest

from freshrec.errors import ConfigError
from freshrec.gate import MetricThreshold, PublishPolicy, decide, parse_thresholds
from freshrec.inference import predict
from freshrec.metrics import evaluate, paired_gains
from freshrec.model import build_model, load_tokenizer
from freshrec.settings import GateSettings, TrainingSettings
from freshrec.trainer import train

from helpers import config, examples, scored_holdout


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


def _judge(user_ids, labels, candidate, champion, drifted: bool):
    from freshrec.drift import DriftResult

    metrics = {"candidate": evaluate(user_ids, labels, candidate), "champion": evaluate(user_ids, labels, champion),
               "gain": paired_gains(user_ids, labels, candidate, champion, confidence=0.9)}
    policy = PublishPolicy.from_settings(GateSettings(), thresholds=(MetricThreshold("auc", True, None, -0.01),))
    return decide(batch_accepted=True, reject_reason=None, trained=True, skip_reason=None, metrics=metrics,
                  has_champion=True, drift=DriftResult("measured", dataset_drift=drifted), policy=policy), metrics


@pytest.mark.unit
def test_gate_judges_the_bootstrap_bound_not_the_point_difference():
    user_ids, labels, champion, rng = scored_holdout(40, 10, 0)
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
    # FRESHREC_STRICT_AFTER_DRIFT=false: drift still excuses the probe's move, but the tolerance stays the tolerance
    lenient = decide(batch_accepted=True, reject_reason=None, trained=True, skip_reason=None, metrics=metrics,
                     has_champion=True, drift=DriftResult("measured", dataset_drift=True),
                     policy=PublishPolicy.from_settings(GateSettings(strict_after_drift=False),
                                                        thresholds=policy.thresholds))
    assert lenient.publish and lenient.drift_explains, lenient.reasons
    assert {r.rule for r in lenient.rules} == {"min_eval_rows", "auc_value", "auc_change", "stability"}


def test_a_rejected_batch_or_no_candidate_decides_before_any_rule_and_log_loss_is_lower_is_better():
    policy = PublishPolicy.from_settings(GateSettings(), thresholds=(MetricThreshold("logloss", False, 0.5),))
    common = dict(reject_reason=None, skip_reason=None, has_champion=False, drift=None, policy=policy)
    rejected = decide(**{**common, "reject_reason": "schema broken"}, batch_accepted=False, trained=False,
                      metrics={})
    assert not rejected.publish and rejected.rules == [] and "schema broken" in rejected.reasons[0]
    skipped = decide(**{**common, "skip_reason": "12 clean rows"}, batch_accepted=True, trained=False, metrics={})
    assert not skipped.publish and skipped.reasons == ["no candidate: 12 clean rows"]
    good = {"n": 500, "positives": 250, "auc": 0.7, "logloss": 0.45, "significant": True}
    first = decide(**common, batch_accepted=True, trained=True, metrics={"candidate": good})
    assert first.publish and [r.rule for r in first.rules] == ["min_eval_rows", "logloss_value", "first_champion"]
    worse = decide(**common, batch_accepted=True, trained=True, metrics={"candidate": {**good, "logloss": 0.55}})
    assert not worse.publish and worse.reasons == ["logloss_value: candidate logloss 0.5500 <= 0.5"]
    few = decide(**common, batch_accepted=True, trained=True, metrics={"candidate": {**good, "n": 20}})
    assert not few.publish and few.reasons[0].startswith("min_eval_rows: 20 held-out rows")
    with pytest.raises(ConfigError, match="FRESHREC_PUBLISH_THRESHOLDS has an entry"):
        parse_thresholds([{"metric": "auc", "valeu": 0.5}])
