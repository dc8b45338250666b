"""The PostgreSQL model registry: versions with their bytes, the 'champion' alias, and the publish gate."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from freshrec.drift import DriftResult
from freshrec.model import Artifact
from freshrec.sqlfiles import query
from freshrec.training import ChampionModel

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHANNEL = "freshrec_champion"


@dataclass(frozen=True)
class PublishPolicy:
    min_auc: float = 0.55
    auc_tolerance: float = 0.01
    min_eval_rows: int = 30


@dataclass
class RuleResult:
    rule: str
    passed: bool
    detail: str


@dataclass
class Decision:
    publish: bool
    reasons: list[str]
    rules: list[RuleResult] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"publish": self.publish, "reasons": self.reasons, "rules": [asdict(r) for r in self.rules]}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def decide(*, batch_accepted: bool, reject_reason: str | None, trained: bool, skip_reason: str | None,
           metrics: dict, has_champion: bool, drift: DriftResult | None, policy: PublishPolicy) -> Decision:
    """Publish only a candidate that is good enough on its own and, against a champion, on the same rows."""
    if not batch_accepted:
        return Decision(False, [f"batch rejected by validation ({reject_reason}): nothing trained"])
    if not trained:
        return Decision(False, [f"no candidate: {skip_reason}"])
    cand = metrics.get("candidate") or {}
    champ = metrics.get("champion") or {}
    rules = [RuleResult("eval_rows", cand.get("n", 0) >= policy.min_eval_rows and bool(cand.get("significant")),
                        f"{cand.get('n', 0)} held-out rows ({cand.get('positives', 0)} positive), "
                        f"minimum {policy.min_eval_rows} with both classes")]
    auc = cand.get("auc")
    rules.append(RuleResult("min_auc", auc is not None and auc >= policy.min_auc,
                            f"candidate AUC {_fmt(auc)} vs floor {policy.min_auc:.4f}"))
    if has_champion:
        champ_auc = champ.get("auc")
        drifted = bool(drift and drift.status == "measured" and (drift.dataset_drift or drift.prediction_drift))
        if auc is None or champ_auc is None:
            rules.append(RuleResult("vs_champion", False, "AUC undefined on the held-out rows (one class only)"))
        elif drifted:
            rules.append(RuleResult("beats_champion", auc > champ_auc,
                                    f"drift found, so the candidate must beat the champion: "
                                    f"{_fmt(auc)} vs {_fmt(champ_auc)}"))
        else:
            rules.append(RuleResult("non_inferior", auc >= champ_auc - policy.auc_tolerance,
                                    f"candidate AUC {_fmt(auc)} vs champion {_fmt(champ_auc)} "
                                    f"- tolerance {policy.auc_tolerance:.4f}"))
    else:
        rules.append(RuleResult("first_champion", True, "no champion yet: the value thresholds decide"))
    publish = all(r.passed for r in rules)
    reasons = [f"{r.rule}: {r.detail}" for r in rules if not r.passed] or ["all rules passed"]
    return Decision(publish, reasons, rules)


def load_champion(engine: Engine, alias: str = CHAMPION) -> ChampionModel | None:
    with engine.connect() as conn:
        row = conn.execute(query("champion_get"), {"alias": alias}).first()
    if row is None:
        return None
    return ChampionModel(int(row.version), bytes(row.artifact), row.artifact_sha256, row.reference_sample)


@dataclass
class PublishResult:
    version: int
    status: str  # published | rejected | lost_race
    champion_before: int | None


def insert_version_and_maybe_promote(conn: sa.Connection, *, artifact: Artifact, decision: Decision,
                                     champion_before: int | None, metrics: dict, batch_ids: list[int],
                                     cycle_id: int | None, reference_sample: list[dict] | None) -> PublishResult:
    """Inside the caller's transaction: store the candidate, and move the champion alias by compare-and-set."""
    status = "published" if decision.publish else "rejected"
    version = conn.execute(query("model_version_insert"), {
        "status": status, "base_model": artifact.config["base_model"], "train_mode": artifact.config["train_mode"],
        "parent_version": champion_before, "artifact": artifact.data, "artifact_sha256": artifact.sha256,
        "artifact_size": artifact.size, "config": json.dumps(artifact.config), "metrics": json.dumps(metrics),
        "training_batch_ids": batch_ids, "cycle_id": cycle_id, "reason": "; ".join(decision.reasons),
        "reference_sample": json.dumps(reference_sample) if reference_sample is not None else None,
    }).scalar_one()
    if not decision.publish:
        return PublishResult(version, status, champion_before)
    if champion_before is None:
        moved = conn.execute(query("alias_create"), {"alias": CHAMPION, "version": version}).rowcount
    else:
        moved = conn.execute(query("alias_move"), {"alias": CHAMPION, "version": version,
                                                   "expected": champion_before}).rowcount
    if moved != 1:
        reason = "lost the race: the champion alias moved while this candidate was being evaluated"
        conn.execute(query("model_version_set_status"), {"version": version, "status": "lost_race", "reason": reason})
        log.warning("version %d %s", version, reason)
        return PublishResult(version, "lost_race", champion_before)
    conn.execute(query("alias_history_insert"), {"alias": CHAMPION, "from_version": champion_before,
                                                 "to_version": version, "action": "publish",
                                                 "reason": "; ".join(decision.reasons), "cycle_id": cycle_id})
    conn.execute(query("notify_champion"), {"channel": CHANNEL, "payload": str(version)})
    log.info("published version %d as champion (was %s)", version, champion_before)
    return PublishResult(version, "published", champion_before)


def list_models(engine: Engine, limit: int = 50) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(query("models_list"), {"limit": limit}).mappings().all()
    return [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]
