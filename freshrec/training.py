"""The fine-tune step: warm-start from the champion, train on the clean batch plus replay, evaluate both.

Test-then-train: the champion scores every new row before anything trains on it (the prequential metric);
the candidate trains on the older part of the batch plus a replay sample of older rows, and champion and
candidate are compared on the same held-out newest slice.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.features import build_examples, split_holdout
from freshrec.ingest import Cursor
from freshrec.metrics import binary_metrics
from freshrec.model import Artifact, ModelConfig, build_model, load_artifact, new_model_config, save_artifact
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    model: str
    train_mode: str = "lora"
    device: str = "auto"
    seed: int = 0
    learning_rate: float = 1e-3
    batch_size: int = 32
    max_steps: int = 200
    max_seconds: float = 120.0
    epochs: int = 2
    holdout_share: float = 0.2
    min_train_rows: int = 32
    min_eval_rows: int = 30
    replay_ratio: float = 0.5
    history_len: int = 5
    max_item_tokens: int = 48
    max_user_tokens: int = 96


@dataclass(frozen=True)
class ChampionModel:
    """The serving champion as the trainer needs it."""
    version: int
    artifact: bytes
    sha256: str
    reference_sample: list[dict] | None


@dataclass
class TrainStats:
    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    first_loss: float | None = None
    last_loss: float | None = None
    device: str = "cpu"
    stopped_by: str = "data"  # data | max_steps | max_seconds

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


@dataclass
class UpdateOutcome:
    trained: bool
    skip_reason: str | None
    champion_version: int | None
    examples: pd.DataFrame  # every clean row, with features and the champion's score ('champion_score')
    holdout: pd.DataFrame  # the held-out newest slice, with 'candidate_score'
    metrics: dict = field(default_factory=dict)  # champion / candidate on the holdout, prequential on all
    artifact: Artifact | None = None
    train_rows: int = 0
    replay_rows: int = 0
    stats: TrainStats | None = None


def pick_device(requested: str):
    import torch

    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from freshrec.errors import ModelError
            raise ModelError("FRESHREC_DEVICE is 'cuda' but PyTorch sees no GPU: install a CUDA build of torch "
                             "(see README) or set FRESHREC_DEVICE=auto.")
        return torch.device("cuda")
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    return torch.device("cpu")


def _tokenize(tokenizer, texts: list[str], max_len: int, device):
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    non_blocking = device.type == "cuda"
    if non_blocking:
        enc = {k: v.pin_memory() for k, v in enc.items()}
    return enc["input_ids"].to(device, non_blocking=non_blocking), enc["attention_mask"].to(device, non_blocking=non_blocking)


def _pair_logits(model, tokenizer, config: ModelConfig, user_texts, item_texts, device):
    """Logits for pairs, encoding each distinct text once (batches repeat users and items)."""
    u_unique, u_inv = np.unique(np.asarray(user_texts, dtype=object), return_inverse=True)
    i_unique, i_inv = np.unique(np.asarray(item_texts, dtype=object), return_inverse=True)
    import torch

    u = model.embed(*_tokenize(tokenizer, list(u_unique), config.max_user_tokens, device))
    i = model.embed(*_tokenize(tokenizer, list(i_unique), config.max_item_tokens, device))
    return model.score_pairs(u[torch.as_tensor(u_inv, device=device)], i[torch.as_tensor(i_inv, device=device)])


def _autocast(device):
    import contextlib

    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict(model, tokenizer, config: ModelConfig, examples: pd.DataFrame, device=None,
            batch_size: int = 256) -> np.ndarray:
    """P(engage) for each example."""
    import torch

    if examples.empty:
        return np.zeros(0)
    device = device or next(model.parameters()).device
    model.to(device).eval()
    out = []
    with torch.no_grad(), _autocast(device):
        for lo in range(0, len(examples), batch_size):
            chunk = examples.iloc[lo:lo + batch_size]
            logits = _pair_logits(model, tokenizer, config, chunk["user_text"].tolist(),
                                  chunk["item_text"].tolist(), device)
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(out)


def train(model, tokenizer, config: ModelConfig, examples: pd.DataFrame, cfg: TrainConfig,
          progress: Callable[[str], None] | None = None) -> TrainStats:
    """Fine-tune in place on the examples, within the step and time budget."""
    import torch

    device = pick_device(cfg.device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    n = len(examples)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    labels = torch.as_tensor(examples["label"].to_numpy(dtype=np.float32))
    user_texts = examples["user_text"].to_numpy(dtype=object)
    item_texts = examples["item_text"].to_numpy(dtype=object)
    stats = TrainStats(device=device.type)
    started = time.perf_counter()
    last_report = started
    step = 0
    while step < total:
        order = rng.permutation(n)
        for lo in range(0, n, cfg.batch_size):
            if step >= total:
                break
            idx = order[lo:lo + cfg.batch_size]
            with _autocast(device):
                logits = _pair_logits(model, tokenizer, config, user_texts[idx], item_texts[idx], device)
            loss = loss_fn(logits.float(), labels[idx].to(device, non_blocking=True))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            stats.examples += len(idx)
            value = float(loss.detach())
            stats.first_loss = value if stats.first_loss is None else stats.first_loss
            stats.last_loss = value
            now = time.perf_counter()
            if now - started > cfg.max_seconds:
                stats.stopped_by = "max_seconds"
                total = step
                break
            if progress and now - last_report > 5:
                progress(f"training step {step}/{total}, loss {value:.4f}, "
                         f"{stats.examples / (now - started):.0f} examples/s")
                last_report = now
    if stats.stopped_by == "data" and step >= cfg.max_steps and cfg.epochs * steps_per_epoch > cfg.max_steps:
        stats.stopped_by = "max_steps"
    stats.steps = step
    stats.seconds = time.perf_counter() - started
    model.eval()
    return stats


def replay_sample(engine: Engine, before: Cursor, rows: int, seed: int) -> pd.DataFrame:
    """Up to `rows` random older clean rows, drawn with a Bernoulli table sample sized to the need."""
    if rows <= 0:
        return pd.DataFrame()
    with engine.connect() as conn:
        total = int(conn.execute(query("interactions_estimate")).scalar_one() or 0)
        if total <= 0:  # never analysed: count what the cursor has passed (small tables only get here)
            total = int(conn.execute(query("interactions_count_until"), before.as_params()).scalar_one())
        if total <= 0:
            return pd.DataFrame()
        percent = min(100.0, 100.0 * 3 * rows / total)
        return pd.read_sql_query(query("replay_sample"), conn, params={
            **before.as_params(), "percent": percent, "seed": seed, "max_rows": rows}, dtype_backend="numpy_nullable")


def run_update(
    engine: Engine,
    clean: pd.DataFrame,
    champion: ChampionModel | None,
    cfg: TrainConfig,
    *,
    replay_before: Cursor | None = None,
    progress: Callable[[str], None] | None = None,
) -> UpdateOutcome:
    """Score the batch with the champion, fine-tune a candidate from it, and evaluate both on the holdout."""
    from freshrec.model import load_tokenizer

    examples = build_examples(engine, clean, cfg.history_len)
    champion_model = champion_config = None
    if champion is not None:
        champion_model, champion_config = load_artifact(champion.artifact, champion.sha256)
    base_name = champion_config.base_model if champion_config else cfg.model
    tokenizer = load_tokenizer(base_name)
    device = pick_device(cfg.device)
    metrics: dict = {}
    if champion_model is not None and len(examples):
        examples["champion_score"] = predict(champion_model, tokenizer, champion_config, examples, device)
        metrics["prequential"] = binary_metrics(examples["label"], examples["champion_score"], cfg.min_eval_rows)
    outcome = UpdateOutcome(False, None, champion.version if champion else None, examples, examples.iloc[0:0],
                            metrics)
    if len(examples) < cfg.min_train_rows:
        outcome.skip_reason = f"{len(examples)} clean rows, fewer than the minimum of {cfg.min_train_rows}"
        log.info("training skipped: %s", outcome.skip_reason)
        return outcome

    train_part, holdout = split_holdout(examples, cfg.holdout_share)
    replay = pd.DataFrame()
    if replay_before is not None and cfg.replay_ratio > 0:
        older = replay_sample(engine, replay_before, int(len(train_part) * cfg.replay_ratio), cfg.seed)
        if len(older):
            replay = build_examples(engine, older, cfg.history_len)
    train_set = pd.concat([train_part, replay], ignore_index=True) if len(replay) else train_part

    if champion_model is not None:
        # Warm start: a second copy of the champion becomes the candidate.
        candidate, config = load_artifact(champion.artifact)
    else:
        config = new_model_config(cfg.model, cfg.train_mode, max_item_tokens=cfg.max_item_tokens,
                                  max_user_tokens=cfg.max_user_tokens, history_len=cfg.history_len, seed=cfg.seed)
        candidate = build_model(config)
    stats = train(candidate, tokenizer, config, train_set, cfg, progress)
    log.info("trained %d steps on %d rows (%d replayed) in %.1f s, %.0f examples/s, loss %.4f -> %.4f",
             stats.steps, len(train_set), len(replay), stats.seconds, stats.examples_per_s,
             stats.first_loss or 0, stats.last_loss or 0)
    holdout = holdout.copy()
    holdout["candidate_score"] = predict(candidate, tokenizer, config, holdout, device)
    metrics["candidate"] = binary_metrics(holdout["label"], holdout["candidate_score"], cfg.min_eval_rows)
    if "champion_score" in holdout:
        metrics["champion"] = binary_metrics(holdout["label"], holdout["champion_score"], cfg.min_eval_rows)
    config.extra = {**(config.extra or {}), "last_train": {"steps": stats.steps, "examples": stats.examples,
                                                             "loss": stats.last_loss}}
    outcome.trained = True
    outcome.holdout = holdout
    outcome.metrics = metrics
    outcome.artifact = save_artifact(candidate, config)
    outcome.train_rows = len(train_part)
    outcome.replay_rows = len(replay)
    outcome.stats = stats
    return outcome
