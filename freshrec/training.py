"""The fine-tune step: warm-start from the champion, train on the clean batch plus replay, evaluate both.

Test-then-train: the champion scores every new row before anything trains on it (the prequential metric);
the candidate trains on the rows waiting in the training backlog, the rest of the batch and a replay sample
of older rows, and champion and candidate are compared on the same held-out rows (by default the newest slice
of the batch; FRESHREC_HOLDOUT). Those rows go to the backlog, so the next cycle trains on them: no row is
wasted.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.features import build_examples, split_holdout
from freshrec.ingest import Cursor
from freshrec.inference import _autocast, _ids, _pair_logits, _side, _texts, pick_device, predict
from freshrec.metrics import evaluate, paired_gains
from freshrec.model import (Artifact, ChampionModel, ModelConfig, build_model, load_artifact, new_model_config,
                            save_artifact)
from freshrec.sqlfiles import query
from freshrec.trainset import probe_pairs, replay_sample, replay_seed, training_backlog

log = logging.getLogger(__name__)

LR_SHRINK = 0.5  # after a candidate whose held-out loss rose above the champion's
LR_RECOVER = 1.25  # after one that did not, back up towards the configured rate
LR_FLOOR = 1 / 64  # never below this fraction of the configured rate
ID_LR_MULTIPLIER = 10.0  # the item-id table's rate relative to the encoder's and head's
# In the first pass over the fresh rows each step still carries this share of replayed rows, so no step sees
# only the present (forgetting), while the fresh rows are covered in as few steps as possible.
FIRST_PASS_REPLAY_SHARE = 0.25


@dataclass(frozen=True)
class TrainConfig:
    model: str
    train_mode: str = "lora"
    device: str = "auto"
    seed: int = 0
    learning_rate: float = 1e-3
    batch_size: int = 32
    gpu_batch_size: int = 256
    grad_accum_steps: int = 1
    max_steps: int = 200
    max_seconds: float = 120.0
    epochs: int = 2
    holdout_share: float = 0.2
    holdout: str = "newest"
    min_train_rows: int = 32
    min_eval_rows: int = 30
    replay_ratio: float = 2.0
    max_backlog_rows: int = 50_000
    probe_size: int = 256
    history_len: int = 5
    max_item_tokens: int = 48
    max_user_tokens: int = 96
    id_buckets: int = 0
    category_rate: bool = True
    cpu_threads: int = 0
    drift_reference_rows: int = 2000
    gate_confidence: float = 0.9
    rebase_rows: int = 20_000
    rebase_train_seconds: float = 600.0


@dataclass(frozen=True)
class LrState:
    """The learning rate the next cycle uses, kept with every model version."""
    lr: float
    base_lr: float

    @classmethod
    def initial(cls, base_lr: float, stored: dict | None) -> LrState:
        # A changed FRESHREC_LEARNING_RATE starts over from the new rate.
        if not stored or not math.isclose(float(stored.get("base_lr", -1)), base_lr):
            return cls(base_lr, base_lr)
        return cls(float(stored["lr"]), base_lr)

    def after(self, candidate_loss: float | None, champion_loss: float | None) -> LrState:
        """Shrink after a candidate that fit the fresh rows worse than the champion; recover slowly after one
        that did not."""
        if candidate_loss is None or champion_loss is None:
            return self
        if candidate_loss > champion_loss:
            return LrState(max(self.base_lr * LR_FLOOR, self.lr * LR_SHRINK), self.base_lr)
        return LrState(min(self.base_lr, self.lr * LR_RECOVER), self.base_lr)


@dataclass
class TrainStats:
    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    first_loss: float | None = None
    last_loss: float | None = None
    device: str = "cpu"
    learning_rate: float = 0.0
    stopped_by: str = "data"  # data | max_steps | max_seconds
    fresh_rows: int = 0  # rows of this cycle (and the backlog) the candidate should learn from
    fresh_rows_trained: int = 0  # of those, rows that were in at least one optimizer step
    trained_mask: np.ndarray | None = field(default=None, repr=False)  # per example: in at least one step

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


@dataclass
class UpdateOutcome:
    trained: bool
    skip_reason: str | None
    champion_version: int | None
    examples: pd.DataFrame  # every clean row of the batch, with features and the champion's 'champion_score'
    holdout: pd.DataFrame  # the held-out rows (features.split_holdout), with 'candidate_score'
    reference: pd.DataFrame | None = None  # drift_reference: the candidate's drift reference, if it is published
    metrics: dict = field(default_factory=dict)  # champion / candidate on the holdout, prequential on all rows
    artifact: Artifact | None = None
    cold_start: bool = False
    train_rows: int = 0
    backlog_rows: int = 0
    replay_rows: int = 0
    backlog_used: list[int] = field(default_factory=list)  # backlog rows trained on now: leave the queue
    backlog_add: dict[str, list[int]] = field(default_factory=dict)  # reason -> rows to queue for next time
    stats: TrainStats | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # score / train / evaluate


# --- training ------------------------------------------------------------------------------------------------


def param_groups(model, lr: float) -> list[dict]:
    """The id table learns faster and without weight decay: each step touches a few rows of it, and decoupled
    decay would shrink every item the batch does not contain."""
    table = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("item_ids.")]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("item_ids.")]
    groups = [{"params": rest, "lr": lr, "weight_decay": 0.01}]
    if table:
        groups.append({"params": table, "lr": lr * ID_LR_MULTIPLIER, "weight_decay": 0.0})
    return groups


def batch_order(n: int, fresh: int, batch_size: int, epochs: int, rng) -> list[np.ndarray]:
    """The example rows of each micro-batch: every fresh row (rows [0, fresh)) comes in the first pass, each batch
    topped up with FIRST_PASS_REPLAY_SHARE replayed rows; the replayed rows the first pass left follow; later
    epochs are uniform permutations of everything. So a budget that ends early has seen the most fresh rows
    possible, and replay is still drawn uniformly."""
    fresh_rows, replayed = rng.permutation(fresh), fresh + rng.permutation(n - fresh)
    per_batch = min(batch_size - 1, round(batch_size * FIRST_PASS_REPLAY_SHARE)) if len(replayed) else 0
    take = batch_size - per_batch
    batches, used = [], 0
    for lo in range(0, fresh, take):
        extra = replayed[used:used + per_batch]
        used += len(extra)
        batches.append(np.concatenate([fresh_rows[lo:lo + take], extra]))
    rest = replayed[used:]
    batches += [rest[lo:lo + batch_size] for lo in range(0, len(rest), batch_size)]
    for _ in range(1, epochs):
        order = rng.permutation(n)
        batches += [order[lo:lo + batch_size] for lo in range(0, n, batch_size)]
    return batches


def train(model, tokenizer, config: ModelConfig, examples: pd.DataFrame, cfg: TrainConfig,
          progress: Callable[[str], None] | None = None, learning_rate: float | None = None,
          fresh_rows: int | None = None) -> TrainStats:
    """Fine-tune in place on the examples, within the step and time budget (steps are optimizer steps).

    The first `fresh_rows` examples (default: all) are the fresh ones: each comes before any replayed row is
    used twice (batch_order); the stats say how many of them made it into a step."""
    import torch

    device = pick_device(cfg.device, cfg.cpu_threads)
    model.to(device).train()
    lr = learning_rate or cfg.learning_rate
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(param_groups(model, lr))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    batch_size = cfg.gpu_batch_size if device.type == "cuda" else cfg.batch_size
    accum = max(1, cfg.grad_accum_steps)
    n = len(examples)
    fresh = n if fresh_rows is None else min(n, fresh_rows)
    batches = batch_order(n, fresh, batch_size, cfg.epochs, rng)
    total = min(cfg.max_steps, math.ceil(len(batches) / accum))
    labels = torch.as_tensor(examples["label"].to_numpy(dtype=np.float32))
    users, items = _texts(tokenizer, config, examples)
    side = _side(config, examples)
    ids = _ids(config, examples)
    stats = TrainStats(device=device.type, learning_rate=lr, fresh_rows=fresh)
    seen = np.zeros(n, dtype=bool)
    pending: list[np.ndarray] = []  # rows of the micro-batches since the last optimizer step
    started = time.perf_counter()
    last_report = started
    for micro, rows in enumerate(batches, start=1):
        with _autocast(device):
            logits = _pair_logits(model, users, items, rows, device, side, ids)
        loss = loss_fn(logits.float(), labels[rows].to(device, non_blocking=True))
        (loss / accum).backward()
        pending.append(rows)
        stats.examples += len(rows)
        value = float(loss.detach())
        stats.first_loss = value if stats.first_loss is None else stats.first_loss
        stats.last_loss = value
        if micro % accum and micro < len(batches):
            continue
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seen[np.concatenate(pending)] = True
        pending.clear()
        stats.steps += 1
        now = time.perf_counter()
        if stats.steps >= total:
            if stats.steps < math.ceil(len(batches) / accum):
                stats.stopped_by = "max_steps"
            break
        if now - started > cfg.max_seconds:
            stats.stopped_by = "max_seconds"
            break
        if progress and now - last_report > 5:
            progress(f"training step {stats.steps}/{total}, loss {value:.4f}, "
                     f"{stats.examples / (now - started):.0f} examples/s, fresh rows trained "
                     f"{int(seen[:fresh].sum())}/{fresh}")
            last_report = now
    optimizer.zero_grad(set_to_none=True)
    stats.seconds = time.perf_counter() - started
    stats.fresh_rows_trained = int(seen[:fresh].sum())
    stats.trained_mask = seen
    model.eval()
    return stats


# --- the update step ----------------------------------------------------------------------------------------------


def learning_rate_state(engine: Engine, base_lr: float) -> LrState:
    with engine.connect() as conn:
        stored = conn.execute(query("trainer_state")).scalar()
    return LrState.initial(base_lr, stored)


def drift_reference(model, tokenizer, config: ModelConfig, examples: pd.DataFrame, holdout: pd.DataFrame,
                    cfg: TrainConfig, device) -> pd.DataFrame:
    """The sample a published candidate keeps as its drift reference: up to drift_reference_rows of the whole
    batch (not only the held-out slice: a 100-row slice that happens to be odd would flag drift in every cycle
    until the next publish), with the candidate's scores ('candidate_score'; in-sample for rows it trained on,
    which moves their distribution a little towards the labels)."""
    reference = examples.sample(n=min(cfg.drift_reference_rows, len(examples)), random_state=cfg.seed)
    known = holdout.set_index("id")["candidate_score"]
    scores = reference["id"].map(known)
    missing = scores.isna().to_numpy()
    if missing.any():
        scores[missing] = predict(model, tokenizer, config, reference[missing], device)
    return reference.assign(candidate_score=scores.astype("float64").to_numpy())


def run_update(
    engine: Engine,
    clean: pd.DataFrame,
    champion: ChampionModel | None,
    cfg: TrainConfig,
    *,
    consumer: str,
    replay_before: Cursor | None = None,
    progress: Callable[[str], None] | None = None,
    rebase: str | None = None,
    quarantined_ids: list[int] = (),
) -> UpdateOutcome:
    """Score the batch with the champion, fine-tune a candidate from it, and evaluate both on the holdout.

    With `rebase` (why: freshrec.rebase.rebase_reason) the candidate is instead trained from the base model with
    the current settings on the newest cfg.rebase_rows clean rows plus the batch, and competes the same way."""
    from freshrec.model import load_tokenizer

    timer = time.perf_counter()
    champion_model = champion_config = None
    if champion is not None:
        champion_model, champion_config = load_artifact(champion.artifact, champion.sha256)
    rebase = rebase if champion is not None else None  # without a champion every candidate starts from the base
    # the user x category counts only when a model of this cycle reads them (a warm start keeps its inputs)
    categories = (champion_config.category_rate if champion_config else cfg.category_rate) or bool(
        rebase and cfg.category_rate)
    examples = build_examples(engine, clean, cfg.history_len, categories, quarantined_ids)
    tokenizer = load_tokenizer(champion_config.base_model if champion_config else cfg.model)
    device = pick_device(cfg.device, cfg.cpu_threads)
    metrics: dict = {}
    if champion_model is not None and len(examples):
        examples["champion_score"] = predict(champion_model, tokenizer, champion_config, examples, device)
        metrics["prequential"] = evaluate(examples["user_id"], examples["label"], examples["champion_score"],
                                          cfg.min_eval_rows)
    outcome = UpdateOutcome(False, None, champion.version if champion else None, examples, examples.iloc[0:0],
                            metrics, cold_start=champion is None)
    outcome.seconds["score"] = time.perf_counter() - timer
    if len(examples) < cfg.min_train_rows:
        outcome.skip_reason = (f"{len(examples)} clean rows, fewer than the minimum of {cfg.min_train_rows}: "
                               "they wait in the training backlog for the next cycle")
        outcome.backlog_add = {"below_minimum": examples["id"].astype(int).tolist()}
        log.info("training skipped: %s", outcome.skip_reason)
        return outcome

    timer = time.perf_counter()
    train_part, holdout = split_holdout(examples, cfg.holdout_share, cfg.holdout, cfg.seed)
    backlog = training_backlog(engine, consumer, cfg.max_backlog_rows)
    waiting = (build_examples(engine, backlog, cfg.history_len, categories, quarantined_ids) if len(backlog)
               else pd.DataFrame())
    replay = pd.DataFrame()
    if rebase and replay_before is not None:  # the recent window, in place of the replay sample
        from freshrec.rebase import recent_rows

        window = recent_rows(engine, consumer, replay_before, cfg.rebase_rows)
        if len(window):
            replay = build_examples(engine, window, cfg.history_len, categories, quarantined_ids)
    elif replay_before is not None and cfg.replay_ratio > 0:
        fresh = len(train_part) + len(waiting)
        older = replay_sample(engine, consumer, replay_before, int(fresh * cfg.replay_ratio),
                              replay_seed(cfg.seed, replay_before))
        if len(older):
            replay = build_examples(engine, older, cfg.history_len, categories, quarantined_ids)
    train_set = pd.concat([part for part in (waiting, train_part, replay) if len(part)], ignore_index=True)

    lr_state = learning_rate_state(engine, cfg.learning_rate)
    budget = cfg
    if rebase:  # a fresh start: the configured rate, a budget of its own, one pass over the window
        lr_state = LrState(cfg.learning_rate, cfg.learning_rate)
        budget = replace(cfg, max_seconds=cfg.rebase_train_seconds, max_steps=10**9, epochs=1)
    if champion_model is not None and not rebase:
        candidate, config = load_artifact(champion.artifact)  # warm start: a second copy of the champion
    else:
        config = new_model_config(cfg.model, cfg.train_mode, max_item_tokens=cfg.max_item_tokens,
                                  max_user_tokens=cfg.max_user_tokens, history_len=cfg.history_len, seed=cfg.seed,
                                  id_buckets=cfg.id_buckets, category_rate=cfg.category_rate)
        candidate = build_model(config)
    fresh = len(waiting) + len(train_part)  # train_set starts with them: every one before replay repeats
    cand_tokenizer = tokenizer if config.base_model == (champion_config.base_model if champion_config
                                                         else cfg.model) else load_tokenizer(config.base_model)
    stats = train(candidate, cand_tokenizer, config, train_set, budget, progress, learning_rate=lr_state.lr,
                  fresh_rows=fresh)
    log.info("trained %d steps at lr %.2e on %d rows (%d from the backlog, %d replayed) in %.1f s, "
             "%.0f examples/s, loss %.4f -> %.4f; fresh rows trained %d of %d", stats.steps, lr_state.lr,
             len(train_set), len(waiting), len(replay), stats.seconds, stats.examples_per_s, stats.first_loss or 0,
             stats.last_loss or 0, stats.fresh_rows_trained, stats.fresh_rows)
    outcome.seconds["train"] = time.perf_counter() - timer

    timer = time.perf_counter()
    holdout = holdout.copy()
    holdout["candidate_score"] = predict(candidate, cand_tokenizer, config, holdout, device)
    metrics["candidate"] = evaluate(holdout["user_id"], holdout["label"], holdout["candidate_score"],
                                    cfg.min_eval_rows)
    if "champion_score" in holdout:
        metrics["champion"] = evaluate(holdout["user_id"], holdout["label"], holdout["champion_score"],
                                       cfg.min_eval_rows)
        # the gate judges the paired difference with its uncertainty, not two point estimates
        metrics["gain"] = paired_gains(holdout["user_id"], holdout["label"], holdout["candidate_score"],
                                       holdout["champion_score"], cfg.gate_confidence, seed=cfg.seed)
    outcome.reference = drift_reference(candidate, cand_tokenizer, config, examples, holdout, cfg, device)
    probe = probe_pairs(engine, examples, cfg.probe_size, cfg.seed)
    if champion_model is not None and len(probe):
        moved = np.abs(predict(candidate, cand_tokenizer, config, probe, device)
                       - predict(champion_model, tokenizer, champion_config, probe, device))
        metrics["probe"] = {"n": len(probe), "mean_abs_change": float(moved.mean()),
                            "max_abs_change": float(moved.max())}
    next_lr = lr_state.after(metrics["candidate"]["logloss"], (metrics.get("champion") or {}).get("logloss"))
    lineage = {"kind": "rebase" if rebase else "cold_start" if champion is None else "warm_start",
               "parent": champion.version if champion else None, **({"reason": rebase} if rebase else {})}
    if rebase:
        metrics["rebase"] = {"reason": rebase, "window_rows": len(replay)}
    config.extra = {**(config.extra or {}), "lr_state": asdict(next_lr), "cold_start": champion is None,
                    "lineage": lineage,
                    "last_train": {"steps": stats.steps, "examples": stats.examples, "loss": stats.last_loss,
                                   "learning_rate": lr_state.lr}}
    outcome.seconds["evaluate"] = time.perf_counter() - timer
    outcome.trained = True
    outcome.holdout = holdout
    outcome.metrics = metrics
    outcome.artifact = save_artifact(candidate, config)
    outcome.train_rows = len(train_set)
    outcome.backlog_rows = len(waiting)
    outcome.replay_rows = len(replay)
    # Fresh rows the budget did not reach stay queued (backlog rows) or join the queue: the next cycle
    # trains them first, so no clean row is silently never seen.
    trained = stats.trained_mask
    outcome.backlog_used = (waiting["id"][trained[:len(waiting)]].astype(int).tolist() if len(waiting) else [])
    outcome.backlog_add = {"held_out": holdout["id"].astype(int).tolist(),
                           "not_trained": train_part["id"][~trained[len(waiting):fresh]].astype(int).tolist()}
    outcome.stats = stats
    return outcome
