"""The training loop: fine-tune a model in place on examples, within a step and time budget.

Fresh rows first (batch_order), replayed rows after; the learning-rate state a lineage carries from cycle to
cycle (LrState). No database writes, no model selection: fine_tune.py decides what to train on and what to keep.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.inference import FrozenEncoderCache, _autocast, _ids, _pair_logits, _side, _texts, pick_device
from freshrec.model import ModelConfig
from freshrec.settings import TrainingSettings
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

LR_SHRINK = 0.5  # after a candidate whose held-out loss rose above the champion's
LR_RECOVER = 1.25  # after one that did not, back up towards the configured rate
LR_FLOOR = 1 / 64  # never below this fraction of the configured rate
ID_LR_MULTIPLIER = 10.0  # the item-id table's rate relative to the encoder's and head's
# In the first pass over the fresh rows each step still carries this share of replayed rows, so no step sees
# only the present (forgetting), while the fresh rows are covered in as few steps as possible.
FIRST_PASS_REPLAY_SHARE = 0.25
# A head-only update encodes the texts of this many micro-batches ahead at once (FrozenEncoderCache.fill): chunks
# of similar length pad less than one micro-batch's texts; a budget that ends early wastes at most this much.
PREFETCH_BATCHES = 16


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


REACH_HEADROOM = 1.5  # a cycle reads up to this many times the rows its last measured speed would train


def warm_start_throughput(engine: Engine) -> float | None:
    """Examples per second of the newest warm start's training (None: none recorded yet)."""
    with engine.connect() as conn:
        value = conn.execute(query("warm_start_throughput")).scalar()
    return float(value) if value is not None and value > 0 else None


def budget_reach(max_examples: int, max_seconds: float, examples_per_s: float | None) -> int:
    """How many examples a training budget is expected to reach: `max_examples` (steps x rows per step), and with a
    measured speed (warm_start_throughput) no more than REACH_HEADROOM x examples_per_s x max_seconds.

    A cycle reads and encodes (point-in-time features, tokens) its backlog rows and replayed rows before training;
    rows past the reach would be encoded and then never trained. When the time budget is below what the stream
    needs, the backlog grows every cycle, and without this bound each cycle encoded all of it (up to
    FRESHREC_MAX_BACKLOG_ROWS) plus twice as many replayed rows (2026-12-03, MovieLens at a 20 s budget: 50 s of a
    cycle's training phase for 20 s of training)."""
    if not examples_per_s:
        return max_examples
    return max(1, min(max_examples, int(REACH_HEADROOM * examples_per_s * max_seconds)))


def replay_rows(fresh: int, ratio: float, reach: int) -> int:
    """How many older rows to replay: `ratio` per fresh row, but no more than the budget's reach (budget_reach) less
    the fresh rows, and never fewer than the first pass tops its steps up with (FIRST_PASS_REPLAY_SHARE). The
    sample stays uniform over history: it is only smaller."""
    wanted = int(fresh * ratio)
    first_pass = math.ceil(fresh * FIRST_PASS_REPLAY_SHARE / (1 - FIRST_PASS_REPLAY_SHARE))
    return min(wanted, max(first_pass, reach - fresh))


def learning_rate_state(engine: Engine, base_lr: float) -> LrState:
    with engine.connect() as conn:
        stored = conn.execute(query("trainer_state")).scalar()
    return LrState.initial(base_lr, stored)


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


def param_groups(model, lr: float, head_only: bool = False) -> list[dict]:
    """The id table learns faster and without weight decay: each step touches a few rows of it, and decoupled
    decay would shrink every item the batch does not contain. head_only: everything but the encoder. The wide
    part never takes gradient steps: its weights are a posterior fitted in closed form (wide.py)."""
    named = [(n, p) for n, p in model.named_parameters()
             if p.requires_grad and not (head_only and n.startswith("encoder.")) and not n.startswith("wide.")]
    table = [p for n, p in named if n.startswith("item_ids.")]
    rest = [p for n, p in named if not n.startswith("item_ids.")]
    groups = [{"params": rest, "lr": lr, "weight_decay": 0.01}]
    if table:
        groups.append({"params": table, "lr": lr * ID_LR_MULTIPLIER, "weight_decay": 0.0})
    return groups


def batch_order(n: int, fresh: int, batch_size: int, epochs: int, rng, block: int | None = None
                ) -> list[np.ndarray]:
    """The example rows of each micro-batch: every fresh row (rows [0, fresh)) comes in the first pass, each batch
    topped up with FIRST_PASS_REPLAY_SHARE replayed rows; the replayed rows the first pass left follow; later
    epochs are uniform permutations of everything. So a budget that ends early has seen the most fresh rows
    possible, and replay is still drawn uniformly.

    block: the fresh rows are in priority order (the caller puts the newest first) and are shuffled only within
    consecutive blocks of this many rows, so a budget that ends early has trained the highest-priority ones;
    None: one uniform shuffle of all fresh rows."""
    if block:
        fresh_rows = np.concatenate([lo + rng.permutation(min(block, fresh - lo)) for lo in range(0, fresh, block)]
                                    or [np.arange(0)])
    else:
        fresh_rows = rng.permutation(fresh)
    replayed = fresh + rng.permutation(n - fresh)
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


def train(model, tokenizer, config: ModelConfig, examples: pd.DataFrame, cfg: TrainingSettings,
          progress: Callable[[str], None] | None = None, learning_rate: float | None = None,
          fresh_rows: int | None = None, fresh_block: int | None = None, head_only: bool = False,
          cache: FrozenEncoderCache | None = None) -> TrainStats:
    """Fine-tune in place on the examples, within the step and time budget (steps are optimizer steps).

    The first `fresh_rows` examples (default: all) are the fresh ones: each comes before any replayed row is
    used twice (batch_order; with fresh_block, in their given order, shuffled within blocks); the stats say how
    many of them made it into a step. head_only: the encoder stays as it is (FRESHREC_UPDATE_SCOPE=head) and each
    distinct text is encoded once, forward only, when a batch first needs it (`cache`, which may already hold
    the champion's embeddings of the same encoder); the head and id table train. The wide part is not trained
    here (fine_tune fits it, wide.py)."""
    import torch

    device = pick_device(cfg.device, cfg.cpu_threads)
    model.to(device).train()
    lr = learning_rate or cfg.learning_rate
    groups = param_groups(model, lr, head_only)
    params = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(groups)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    batch_size = cfg.gpu_batch_size if device.type == "cuda" else cfg.batch_size
    accum = max(1, cfg.grad_accum_steps)
    n = len(examples)
    fresh = n if fresh_rows is None else min(n, fresh_rows)
    batches = batch_order(n, fresh, batch_size, cfg.epochs, rng, fresh_block)
    total = min(cfg.max_train_steps, math.ceil(len(batches) / accum))
    labels = torch.as_tensor(examples["label"].to_numpy(dtype=np.float32))
    users, items = _texts(tokenizer, config, examples)
    side = _side(config, examples)
    ids = _ids(config, examples)
    cache = (cache or FrozenEncoderCache(model, device)) if head_only else None
    stats = TrainStats(device=device.type, learning_rate=lr, fresh_rows=fresh)
    seen = np.zeros(n, dtype=bool)
    pending: list[np.ndarray] = []  # rows of the micro-batches since the last optimizer step
    started = time.perf_counter()
    last_report = started
    for micro, rows in enumerate(batches, start=1):
        if cache is not None and (micro - 1) % PREFETCH_BATCHES == 0:
            ahead = np.concatenate(batches[micro - 1:micro - 1 + PREFETCH_BATCHES])
            cache.fill(users, users.index[ahead])
            cache.fill(items, items.index[ahead])
        with _autocast(device):
            logits = _pair_logits(model, users, items, rows, device, side, ids, cache)
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
        if now - started > cfg.max_train_seconds:
            stats.stopped_by = "max_seconds"
            break
        if progress and now - last_report > 5:
            progress(f"training step {stats.steps}/{total}, loss {value:.4f}, "
                     f"{stats.examples / (now - started):.0f} examples/s, fresh rows trained "
                     f"{int(seen[:fresh].sum())}/{fresh}")
            last_report = now
    model.zero_grad(set_to_none=True)  # also the wide part's, which no step applies (param_groups)
    stats.seconds = time.perf_counter() - started
    stats.fresh_rows_trained = int(seen[:fresh].sum())
    stats.trained_mask = seen
    model.eval()
    return stats
