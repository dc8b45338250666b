"""The PostgreSQL model registry: versions with their bytes, the 'champion' alias and its history.

Publishing (what the gate in gate.py decided) moves the alias by compare-and-set, in the cycle's transaction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from freshrec.errors import ConcurrentCycleError, ModelError
from freshrec.gate import Decision
from freshrec.artifacts import Artifact, ChampionModel
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHANNEL = "freshrec_champion"


def verify_artifact(version: int, data: bytes, expected_sha256: str,
                    allowed_base_models: tuple[str, ...] | list[str] | None) -> None:
    """A version's bytes match their recorded sha256 and name a base model this deployment allows."""
    import hashlib

    from freshrec.model import check_base_model
    from freshrec.artifacts import read_artifact_config

    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ModelError(f"Model version {version}'s bytes have sha256 {actual[:12]}..., not the recorded "
                         f"{expected_sha256[:12]}...: they were altered; the champion stays as it is; promote "
                         "another version.")
    check_base_model(read_artifact_config(data).base_model, allowed_base_models)


def load_champion(engine: Engine, alias: str = CHAMPION,
                  allowed_base_models: tuple[str, ...] | list[str] | None = None) -> ChampionModel | None:
    """The champion's bytes, verified (sha256), naming a base model this deployment allows."""
    from freshrec.artifacts import check_artifact

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


def adopt_reference(conn: sa.Connection, version: int, reference_sample: list[dict]) -> bool:
    """Inside the caller's transaction: give a version without a drift reference (a cold start) this one; a
    stored reference is never replaced. True when it took."""
    return conn.execute(query("model_version_adopt_reference"), {
        "version": version, "reference_sample": json.dumps(reference_sample)}).rowcount == 1


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
