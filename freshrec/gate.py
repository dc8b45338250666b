"""The publish gate: whether a candidate replaces the champion.

It follows TFX's Evaluator: for each metric a value threshold (an absolute floor or ceiling) and a change
threshold against the champion, each with a direction, on the same held-out rows, with a minimum sample size.
No thresholds configured means nothing publishes. A change threshold is judged on candidate - champion with its
uncertainty (the one-sided bound of a paired bootstrap over the held-out users, metrics.paired_gains); after
drift (unless FRESHREC_STRICT_AFTER_DRIFT is false) the candidate must also be ahead on the point difference. A
stability guard refuses a candidate whose scores on a fixed probe set move too far from the champion's in one step,
unless drift explains it or the candidate is a rebase (a new lineage). Storage and the alias: registry.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from freshrec.drift import DriftResult
from freshrec.settings import GateSettings


@dataclass(frozen=True)
class MetricThreshold:
    """One metric's thresholds. change: how much better than the champion the candidate must be, in the
    metric's good direction; negative = a tolerance (-0.01: at most 0.01 worse)."""
    metric: str
    higher_is_better: bool = True
    value: float | None = None
    change: float | None = None


@dataclass(frozen=True)
class PublishPolicy:
    """The gate's rules, read from the settings' gate group (the defaults live there)."""
    thresholds: tuple[MetricThreshold, ...]
    min_eval_rows: int
    max_probe_change: float  # mean |P(candidate) - P(champion)| on the probe set
    strict_after_drift: bool  # after drift the candidate must also be ahead on the point difference

    @classmethod
    def from_settings(cls, gate: GateSettings, **changes) -> PublishPolicy:
        """The policy of these settings; `changes` replace single rules (e.g. thresholds=())."""
        policy = cls(parse_thresholds(gate.publish_thresholds), gate.min_eval_rows, gate.max_probe_change,
                     gate.strict_after_drift)
        return replace(policy, **changes)


@dataclass
class RuleResult:
    rule: str
    passed: bool
    detail: str
    metric: str | None = None
    candidate: float | None = None
    champion: float | None = None
    threshold: float | None = None


@dataclass
class Decision:
    publish: bool
    reasons: list[str]
    rules: list[RuleResult] = field(default_factory=list)
    drift_explains: bool = False

    def to_json(self) -> dict:
        return {"publish": self.publish, "reasons": self.reasons, "drift_explains": self.drift_explains,
                "rules": [asdict(r) for r in self.rules]}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def decide(*, batch_accepted: bool, reject_reason: str | None, trained: bool, skip_reason: str | None,
           metrics: dict, has_champion: bool, drift: DriftResult | None, policy: PublishPolicy) -> Decision:
    """Publish only a candidate that passes every rule; every rule's verdict is kept."""
    if not batch_accepted:
        return Decision(False, [f"batch rejected by validation ({reject_reason}): nothing trained"])
    if not trained:
        return Decision(False, [f"no candidate: {skip_reason}"])
    if not policy.thresholds:
        return Decision(False, ["no publish thresholds configured, so nothing publishes: set "
                                "FRESHREC_PUBLISH_THRESHOLDS"])
    cand = metrics.get("candidate") or {}
    champ = metrics.get("champion") or {}
    drifted = bool(drift and drift.status == "measured" and (drift.dataset_drift or drift.prediction_drift))
    rules = [RuleResult("min_eval_rows", cand.get("n", 0) >= policy.min_eval_rows and bool(cand.get("significant")),
                        f"{cand.get('n', 0)} held-out rows ({cand.get('positives', 0)} positive), minimum "
                        f"{policy.min_eval_rows} with both classes", threshold=policy.min_eval_rows)]
    for t in policy.thresholds:
        value = cand.get(t.metric)
        better = ">=" if t.higher_is_better else "<="
        if t.value is not None:
            ok = value is not None and (value >= t.value if t.higher_is_better else value <= t.value)
            rules.append(RuleResult(f"{t.metric}_value", ok, f"candidate {t.metric} {_fmt(value)} {better} "
                                    f"{t.value}", t.metric, value, None, t.value))
        if has_champion and t.change is not None:
            rules.append(_change_rule(t, value, champ.get(t.metric), (metrics.get("gain") or {}).get(t.metric),
                                      drifted and policy.strict_after_drift))
    probe = metrics.get("probe")
    if has_champion and probe:
        moved = probe["mean_abs_change"]
        rebase = bool(metrics.get("rebase"))  # a new lineage moves scores by design; its metrics still decide
        excused = ("; drift explains it" if drifted else "; a rebase starts a new lineage" if rebase else "")
        rules.append(RuleResult(
            "stability", moved <= policy.max_probe_change or drifted or rebase,
            f"scores on the {probe['n']} probe pairs moved {moved:.4f} on average (bound "
            f"{policy.max_probe_change})" + (excused if moved > policy.max_probe_change else ""),
            "probe_mean_abs_change", moved, None, policy.max_probe_change))
    if not has_champion:
        rules.append(RuleResult("first_champion", True, "no champion yet: the value thresholds decide"))
    publish = all(r.passed for r in rules)
    reasons = [f"{r.rule}: {r.detail}" for r in rules if not r.passed] or ["all rules passed"]
    return Decision(publish, reasons, rules, drift_explains=drifted)


def _change_rule(t: MetricThreshold, value: float | None, base: float | None, gain: dict | None,
                 drifted: bool) -> RuleResult:
    """Candidate against champion on one metric, judged on the paired difference with its uncertainty
    (metrics.paired_gains): the one-sided lower bound at the configured confidence must clear the change
    threshold (a tolerance when negative: the rows must rule out a loss beyond it, not merely fail to show one).
    After drift the champion is presumed stale, and the candidate must also be ahead on the point difference.
    Without an interval (no rows of both classes) the point difference decides, as TFX does."""
    if value is None or base is None:
        return RuleResult(f"{t.metric}_change", False, f"{t.metric} undefined on the held-out rows",
                          t.metric, value, base, t.change)
    point = (value - base) if t.higher_is_better else (base - value)
    bounded = bool(gain and gain.get("resamples") and np.isfinite(gain.get("lower", np.nan)))
    lower = float(gain["lower"]) if bounded else point
    how = (f"change {point:+.4f} in its good direction, lower {gain['confidence']:.0%} bound {lower:+.4f} "
           f"(bootstrap over {gain['units']} {gain['unit']})" if bounded else f"change {point:+.4f}")
    if drifted:
        return RuleResult(f"{t.metric}_beats_champion", point > 0 and lower >= t.change,
                          f"drift found, so the candidate must be ahead of the champion: {t.metric} "
                          f"{_fmt(value)} vs {_fmt(base)}, {how}; must be > 0 with the bound >= {t.change:+.4f}",
                          t.metric, value, base, t.change)
    return RuleResult(f"{t.metric}_change", lower >= t.change,
                      f"{t.metric} {_fmt(value)} vs champion {_fmt(base)}: {how}, allowed {t.change:+.4f}",
                      t.metric, value, base, t.change)


def parse_thresholds(raw: list[dict]) -> tuple[MetricThreshold, ...]:
    from freshrec.errors import ConfigError

    try:
        return tuple(MetricThreshold(**item) for item in raw)
    except TypeError as exc:
        raise ConfigError(f"FRESHREC_PUBLISH_THRESHOLDS has an entry freshrec does not understand ({exc}): use "
                          'e.g. [{"metric": "auc", "higher_is_better": true, "value": 0.55, "change": -0.01}].') from None


# --- reading the registry -----------------------------------------------------------------------------------
