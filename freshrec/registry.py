"""The PostgreSQL model registry: versions with their bytes, the 'champion' alias, and the publish gate.

The gate follows TFX's Evaluator: for each metric a value threshold (an absolute floor or ceiling) and a change
threshold against the champion, each with a direction, on the same held-out rows, with a minimum sample size.
No thresholds configured means nothing publishes. After drift the champion is presumed stale and the
candidate must beat it; without drift it must be non-inferior within each metric's tolerance. A stability
guard refuses a candidate whose scores on a fixed probe set move too far from the champion's in one step,
unless drift explains it. Publishing moves the alias by compare-and-set, in the cycle's transaction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from freshrec.drift import DriftResult
from freshrec.errors import ConcurrentCycleError, ModelError
from freshrec.model import Artifact
from freshrec.sqlfiles import query
from freshrec.training import ChampionModel

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHANNEL = "freshrec_champion"


@dataclass(frozen=True)
class MetricThreshold:
    """One metric's thresholds. change: how much better than the champion the candidate must be, in the
    metric's good direction; negative = a tolerance (-0.01: at most 0.01 worse)."""
    metric: str
    higher_is_better: bool = True
    value: float | None = None
    change: float | None = None


DEFAULT_THRESHOLDS = (MetricThreshold("auc", True, value=0.55, change=-0.01),
                      MetricThreshold("logloss", False, value=None, change=-0.02))


@dataclass(frozen=True)
class PublishPolicy:
    thresholds: tuple[MetricThreshold, ...] = DEFAULT_THRESHOLDS
    min_eval_rows: int = 30
    max_probe_change: float = 0.15  # mean |P(candidate) - P(champion)| on the probe set


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
                                      drifted))
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


def verify_artifact(version: int, data: bytes, expected_sha256: str,
                    allowed_base_models: tuple[str, ...] | list[str] | None) -> None:
    """A version's bytes match their recorded sha256 and name a base model this deployment allows."""
    import hashlib

    from freshrec.model import check_base_model, read_artifact_config

    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ModelError(f"Model version {version}'s bytes have sha256 {actual[:12]}..., not the recorded "
                         f"{expected_sha256[:12]}...: they were altered; the champion stays as it is; promote "
                         "another version.")
    check_base_model(read_artifact_config(data).base_model, allowed_base_models)


def load_champion(engine: Engine, alias: str = CHAMPION,
                  allowed_base_models: tuple[str, ...] | list[str] | None = None) -> ChampionModel | None:
    """The champion's bytes, verified (sha256), naming a base model this deployment allows."""
    from freshrec.model import check_artifact

    with engine.connect() as conn:
        row = conn.execute(query("champion_get"), {"alias": alias}).first()
    if row is None:
        return None
    if row.artifact is None:
        raise ModelError(f"The {alias} (version {row.version}) has no stored bytes: promote another version "
                         "(freshrec models promote V).")
    check_artifact(bytes(row.artifact), row.artifact_sha256, allowed_base_models)
    return ChampionModel(int(row.version), bytes(row.artifact), row.artifact_sha256, row.reference_sample)


def list_models(engine: Engine, limit: int = 50) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(query("models_list"), {"limit": limit}).mappings().all()
    return [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]


def show_model(engine: Engine, version: int) -> dict:
    with engine.connect() as conn:
        row = conn.execute(query("model_show"), {"version": version}).mappings().first()
        if row is None:
            raise ModelError(f"Model version {version} does not exist: 'freshrec models list' shows the versions.")
        history = conn.execute(query("alias_history_of_version"), {"version": version}).mappings().all()
        decisions = conn.execute(query("decisions_of_version"), {"version": version}).mappings().all()
    return {**dict(row), "created_at": row["created_at"].isoformat(),
            "alias_history": [{**dict(h), "changed_at": h["changed_at"].isoformat()} for h in history],
            "decisions": [{**dict(d), "decided_at": d["decided_at"].isoformat()} for d in decisions]}


def list_decisions(engine: Engine, limit: int = 50) -> list[dict]:
    """The publish gate's decisions, newest first, with every rule's result."""
    with engine.connect() as conn:
        rows = conn.execute(query("decisions_recent"), {"limit": limit}).mappings().all()
    return [{**dict(r), "decided_at": r["decided_at"].isoformat()} for r in rows]


def champion_stack(conn: sa.Connection, alias: str = CHAMPION) -> list[int]:
    """The alias's champions in order, replaying its history: publish/promote push, rollback pops."""
    stack: list[int] = []
    for row in conn.execute(query("alias_history"), {"alias": alias}):
        if row.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != row.to_version:
                stack.append(row.to_version)
        else:
            stack.append(row.to_version)
    return stack


# --- writing the registry (inside the caller's transaction where it says so) --------------------------------


@dataclass
class PublishResult:
    version: int
    status: str  # published | rejected | lost_race
    champion_before: int | None


def _move_alias(conn: sa.Connection, *, alias: str, version: int, expected: int | None, action: str,
                reason: str, cycle_id: int | None = None) -> bool:
    """Compare-and-set the alias from expected to version; record the history row and notify listeners."""
    if expected is None:
        moved = conn.execute(query("alias_create"), {"alias": alias, "version": version}).rowcount
    else:
        moved = conn.execute(query("alias_move"), {"alias": alias, "version": version,
                                                   "expected": expected}).rowcount
    if moved != 1:
        return False
    conn.execute(query("alias_history_insert"), {"alias": alias, "from_version": expected, "to_version": version,
                                                 "action": action, "reason": reason, "cycle_id": cycle_id})
    # Delivered at commit, so a listener never hears of a version it cannot read yet.
    conn.execute(query("notify_champion"), {"channel": CHANNEL, "payload": str(version)})
    return True


def insert_version_and_maybe_promote(conn: sa.Connection, *, artifact: Artifact, decision: Decision,
                                     champion_before: int | None, metrics: dict, batch_ids: list[int],
                                     cycle_id: int | None, reference_sample: list[dict] | None,
                                     keep_rejected: int = 20) -> PublishResult:
    """Inside the caller's transaction: store the candidate, and move the champion alias by compare-and-set."""
    status = "published" if decision.publish else "rejected"
    version = conn.execute(query("model_version_insert"), {
        "status": status, "base_model": artifact.config["base_model"], "train_mode": artifact.config["train_mode"],
        "parent_version": champion_before, "artifact": artifact.data, "artifact_sha256": artifact.sha256,
        "artifact_size": artifact.size, "config": json.dumps(artifact.config), "metrics": json.dumps(metrics),
        "training_batch_ids": batch_ids, "cycle_id": cycle_id, "reason": "; ".join(decision.reasons),
        "reference_sample": json.dumps(reference_sample) if reference_sample is not None else None,
    }).scalar_one()
    result = PublishResult(version, status, champion_before)
    if decision.publish and not _move_alias(conn, alias=CHAMPION, version=version, expected=champion_before,
                                            action="publish", reason="; ".join(decision.reasons),
                                            cycle_id=cycle_id):
        reason = "lost the race: the champion alias moved while this candidate was being evaluated"
        conn.execute(query("model_version_set_status"), {"version": version, "status": "lost_race", "reason": reason})
        log.warning("version %d %s", version, reason)
        result = PublishResult(version, "lost_race", champion_before)
    elif decision.publish:
        log.info("published version %d as champion (was %s)", version, champion_before)
    conn.execute(query("prune_rejected_artifacts"), {"keep": keep_rejected})
    return result


def record_decision(conn: sa.Connection, *, cycle_id: int | None, decision: Decision, champion: int | None,
                    publish: PublishResult | None) -> None:
    conn.execute(query("decision_insert"), {
        "cycle_id": cycle_id, "champion_version": champion,
        "candidate_version": publish.version if publish else None,
        "published": bool(publish and publish.status == "published"),
        "outcome": publish.status if publish else "no_candidate", "drift_explains": decision.drift_explains,
        "rules": json.dumps([asdict(r) for r in decision.rules]), "reasons": decision.reasons})


def promote(engine: Engine, version: int, reason: str = "promoted by hand",
            allowed_base_models: tuple[str, ...] | list[str] | None = None) -> dict:
    """Make a stored version the champion (by hand), atomically and recorded; its bytes are verified first."""
    with engine.begin() as conn:
        row = conn.execute(query("model_for_promotion"), {"version": version}).first()
        if row is None:
            raise ModelError(f"Model version {version} does not exist: 'freshrec models list' shows the versions.")
        if not row.has_artifact:
            raise ModelError(f"Model version {version}'s bytes were pruned (it was rejected long ago): promote "
                             "a version that still has them.")
        verify_artifact(version, bytes(row.artifact), row.artifact_sha256, allowed_base_models)
        current = conn.execute(query("alias_lock"), {"alias": CHAMPION}).scalar()
        if current == version:
            return {"champion": version, "changed": False}
        _move_alias(conn, alias=CHAMPION, version=version, expected=current, action="promote", reason=reason)
        conn.execute(query("model_version_set_status"), {"version": version, "status": "published",
                                                         "reason": reason})
    log.info("version %d promoted to champion (was %s)", version, current)
    return {"champion": version, "previous": current, "changed": True}


def rollback(engine: Engine, reason: str = "rolled back by hand",
             allowed_base_models: tuple[str, ...] | list[str] | None = None) -> dict:
    """Back to the previous champion in the alias history; a second rollback goes one further back."""
    with engine.begin() as conn:
        current = conn.execute(query("alias_lock"), {"alias": CHAMPION}).scalar()
        stack = champion_stack(conn)
        if current is None or len(stack) < 2:
            raise ModelError("There is no earlier champion to roll back to: 'freshrec models list' shows the "
                             "versions, 'freshrec models promote V' makes one champion.")
        if stack[-1] != current:
            raise ConcurrentCycleError(f"The champion alias ({current}) does not match its history ({stack[-1]}): "
                                       "run the rollback again.")
        target = stack[-2]
        row = conn.execute(query("artifact_of_version"), {"version": target}).one()
        if row.artifact is None:
            raise ModelError(f"The previous champion (version {target}) has no stored bytes: promote another "
                             "version (freshrec models promote V).")
        verify_artifact(target, bytes(row.artifact), row.artifact_sha256, allowed_base_models)
        _move_alias(conn, alias=CHAMPION, version=target, expected=current, action="rollback", reason=reason)
    log.info("rolled the champion back from version %d to %d", current, target)
    return {"champion": target, "previous": current}
