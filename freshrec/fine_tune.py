"""The fine-tune stage: warm-start from the champion, train on the clean batch plus replay, evaluate both.

Test-then-train: the champion scores every new row before anything trains on it (the prequential metric);
the candidate trains on the rows waiting in the training backlog, the rest of the batch and a replay sample
of older rows (trainer.py runs the loop; first, the wide part's posterior takes the fresh rows, wide.py), and
champion and candidate are compared on the same held-out rows (by
default the newest slice of the batch; FRESHREC_HOLDOUT), with those of FRESHREC_GATE_WINDOW_CYCLES - 1 earlier
cycles (trainset.gate_window). Those rows, and any the budget did not reach, go to the backlog, which later
cycles train newest first (held-out rows once they leave the gate's window); past FRESHREC_MAX_BACKLOG_ROWS its
oldest rows leave it untrained, counted in the cycle record. Nothing is written here: the cycle's commit stores
what the outcome carries.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec import wide
from freshrec.embedding_store import EmbeddingStore, encoder_key
from freshrec.features import build_examples, inputs_read, side_columns, split_holdout
from freshrec.inference import FrozenEncoderCache, _side, pick_device, predict
from freshrec.ingest import Cursor
from freshrec.metrics import evaluate, paired_gains
from freshrec.model import build_model, new_model_config
from freshrec.artifacts import Artifact, ChampionModel, load_artifact, save_artifact
from freshrec.settings import Settings
from freshrec.trainer import (FIRST_PASS_REPLAY_SHARE, LrState, TrainStats, budget_reach, learning_rate_state,
                              replay_rows, train, warm_start_throughput)
from freshrec.trainset import gate_window, probe_pairs, replay_sample, replay_seed, training_backlog
from freshrec.wide import WidePosterior

log = logging.getLogger(__name__)

FRESH_BLOCK_BATCHES = 4  # fresh rows are shuffled within blocks of this many batches' worth, newest block first
REBASE_STEPS = 10**9  # a rebase is bounded by FRESHREC_REBASE_TRAIN_SECONDS alone


@dataclass
class FineTuneOutcome:
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
    new_probe: pd.DataFrame | None = None  # the stability guard's probe set, made now: the commit stores it
    # id -> score, for the commit to keep with the rows that wait in the backlog (0013_backlog_champion_scores.sql):
    # the champion's on every row it scored this cycle, the candidate's on the rows the gate judged
    champion_scores: pd.Series | None = None
    candidate_scores: pd.Series | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # score / train / evaluate


def drift_reference(examples: pd.DataFrame, holdout: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """The sample a published candidate keeps as its drift reference: up to drift_reference_rows of the whole
    batch for the inputs (not only the held-out slice: a 100-row slice that happens to be odd would flag drift in
    every cycle until the next publish), and the candidate's scores ('candidate_score') on the held-out rows
    only, NaN elsewhere. Drift later compares the champion's scores on rows it never trained on with these, so
    the reference must be out of sample too: in-sample scores sit closer to the labels, and prediction drift
    would fire on that difference alone. It also spares scoring the rest of the batch a second time. (A batch
    above `rows` keeps the held-out rows the sample drew, about a holdout share of it.)"""
    reference = examples.sample(n=min(rows, len(examples)), random_state=seed)
    scores = reference["id"].map(holdout.set_index("id")["candidate_score"])
    return reference.assign(candidate_score=scores.astype("float64").to_numpy())


def _wide_prior(engine: Engine, model, config, champion_model) -> tuple[WidePosterior, str]:
    """Where the candidate's wide part starts (wide.py): the running posterior (the newest attempt's) if it was
    made for these side inputs; else, for a warm start, the champion's own (or its weights, for a version made
    before); else the hand-set prior of a new lineage."""
    inputs = side_columns(config)
    running = wide.running_posterior(engine, inputs)
    if running is not None:
        return running, "running"
    if champion_model is not None:
        return (WidePosterior.from_json((config.extra or {}).get("wide_posterior"), inputs)
                or wide.current(champion_model, inputs)), "champion"
    return wide.current(model, inputs), "hand-set"


def _fit_wide(model, config, prior: tuple[WidePosterior, str], memory_rows: float, rows: pd.DataFrame,
              offset: np.ndarray | None = None) -> tuple[dict, WidePosterior]:
    """Fit the wide part to the rows (offset: the rest of the model's logit) and say how, for the lineage."""
    start, how = prior
    if not len(rows):  # nothing new: the prior carries over
        wide.set_weights(model, start)
        return wide.summary(start, 0, how), start
    if how != "hand-set":
        start = start.decayed(len(rows), memory_rows)
    posterior = wide.fit_examples(model, config, rows, start, offset)
    fitted = wide.summary(posterior, len(rows), how)
    log.info("wide part fitted to %d rows from the %s prior: weights %s, bias %s", len(rows), how,
             fitted["weights"], fitted["bias"])
    return fitted, posterior


def _embedding_store(engine: Engine, champion_model, device, max_rows: int) -> EmbeddingStore | None:
    """The champion's encoder's kept embeddings (embedding_store.py), the oldest past max_rows dropped; None: off."""
    if not max_rows:
        return None
    store = EmbeddingStore(engine, f"{encoder_key(champion_model)}:{device.type}", max_rows)
    store.prune()
    return store


def known_scores(queued: pd.DataFrame, champion_version: int | None) -> pd.Series:
    """id -> the champion's score, for backlog or gate-window rows (trainset) that this champion version scored in
    an earlier cycle and the commit kept (0013_backlog_champion_scores.sql); others are not in it."""
    if champion_version is None or not len(queued) or "scored_by" not in queued:
        return pd.Series(dtype="float64")
    same = (queued["scored_by"] == champion_version).fillna(False).to_numpy(dtype=bool)
    same &= queued["champion_score"].notna().to_numpy(dtype=bool)
    return pd.Series(queued["champion_score"].to_numpy(dtype=np.float64, na_value=np.nan)[same],
                     index=queued["id"].to_numpy(dtype=np.int64)[same], dtype="float64")


def champion_scores(champion_model, tokenizer, champion_config, rows: pd.DataFrame, known: pd.Series, device,
                    cache) -> np.ndarray:
    """The champion's score on each row: its 'champion_score' column where this cycle's test-then-train pass set
    it, else `known` (known_scores: kept from an earlier cycle with this champion), else scored now."""
    scores = (rows["champion_score"].to_numpy(dtype=np.float64, na_value=np.nan) if "champion_score" in rows
              else np.full(len(rows), np.nan))
    missing = np.isnan(scores)
    if missing.any() and len(known):
        scores[missing] = rows["id"][missing].map(known).to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(scores)
    if missing.any():
        scores[missing] = predict(champion_model, tokenizer, champion_config, rows[missing], device, cache=cache)
    return scores


def _champion_offset(champion_model, tokenizer, champion_config, rows: pd.DataFrame, known: pd.Series, device,
                     cache) -> np.ndarray:
    """The champion's logit on each row less its wide term: what its deep part and id term say, the offset of a
    warm start's wide fit (champion_scores: backlog rows are scored now unless this champion scored them before)."""
    scores = champion_scores(champion_model, tokenizer, champion_config, rows, known, device, cache)
    return wide.residual_logits(champion_model, _side(champion_config, rows), scores)


PROBE_SCORES = "probe_scores"  # a version's own scores on the probe set, kept in its config (config.extra)


def probe_key(probe: pd.DataFrame) -> str:
    """A fingerprint of the probe set's rows: a version's kept probe scores count only for the same set."""
    import hashlib

    digest = hashlib.sha256()
    for row in probe[["user_text", "item_text", "item_id"]].astype(str).itertuples(index=False):
        digest.update("\x1f".join(row).encode() + b"\x1e")
    return digest.hexdigest()


def fine_tune(
    engine: Engine,
    clean: pd.DataFrame,
    champion: ChampionModel | None,
    settings: Settings,
    *,
    replay_before: Cursor | None = None,
    progress: Callable[[str], None] | None = None,
    rebase: str | None = None,
    quarantined_ids: list[int] = (),
) -> FineTuneOutcome:
    """Score the batch with the champion, fine-tune a candidate from it, and evaluate both on the holdout.

    With `rebase` (why: freshrec.rebase.rebase_reason) the candidate is instead trained from the base model with
    the current settings on the newest rebase_rows clean rows plus the batch, and competes the same way."""
    from freshrec.model import load_tokenizer

    cfg, gate, consumer = settings.training, settings.gate, settings.consumer

    timer = time.perf_counter()
    champion_model = champion_config = None
    if champion is not None:
        champion_model, champion_config = load_artifact(champion.artifact, champion.sha256)
    rebase = rebase if champion is not None else None  # without a champion every candidate starts from the base
    # each input only when a model of this cycle reads it (a warm start keeps its inputs; a rebase takes the
    # settings')
    inputs = inputs_read(champion_config or cfg)
    if rebase:
        inputs = {name: on or inputs_read(cfg)[name] for name, on in inputs.items()}
    examples_of = partial(build_examples, engine, history_len=cfg.history_len, exclude_ids=quarantined_ids,
                          **inputs)
    examples = examples_of(clean)
    tokenizer = load_tokenizer(champion_config.base_model if champion_config else cfg.model)
    device = pick_device(cfg.device, cfg.cpu_threads)
    metrics: dict = {}
    # A head-only warm start keeps the champion's encoder: one cache of its embeddings serves scoring, training
    # and the candidate's evaluation, so no text is encoded twice in the cycle; the store (embedding_store.py) keeps
    # them for later cycles while the encoder stays the same (until a rebase is published).
    warm = champion_model is not None and not rebase  # else the candidate is a new model (cold start, rebase)
    head_only = cfg.update_scope == "head" and warm
    store = _embedding_store(engine, champion_model, device, cfg.embedding_cache_rows) if head_only else None
    cache = FrozenEncoderCache(champion_model, device, store) if head_only else None
    if champion_model is not None and len(examples):
        examples["champion_score"] = predict(champion_model, tokenizer, champion_config, examples, device,
                                             cache=cache)
        metrics["prequential"] = evaluate(examples["user_id"], examples["label"], examples["champion_score"],
                                          gate.min_eval_rows)
    outcome = FineTuneOutcome(False, None, champion.version if champion else None, examples, examples.iloc[0:0],
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
    # The backlog is read newest first, and no more of it than this cycle's budget could train in its first pass
    # (`reach`, below): under sustained overload the newest rows train, and the oldest wait (and expire past
    # FRESHREC_MAX_BACKLOG_ROWS, counted in the cycle record; they stay in the history that replay draws from).
    per_step = (cfg.gpu_batch_size if device.type == "cuda" else cfg.batch_size) * max(1, cfg.grad_accum_steps)
    budget = cfg
    if rebase:  # a fresh start: a budget of its own, one pass over the window
        budget = cfg.model_copy(update={"max_train_seconds": cfg.rebase_train_seconds,
                                        "max_train_steps": REBASE_STEPS, "epochs": 1})
    elif champion_model is None:  # the first model also trains from the base: it gets a rebase's time budget
        budget = cfg.model_copy(update={"max_train_seconds": max(cfg.max_train_seconds, cfg.rebase_train_seconds)})
    # the step budget, and the time budget at the newest warm start's speed (trainer.budget_reach): rows past it
    # would be read and encoded for nothing; replay is bounded by it too
    reach = budget_reach(budget.max_train_steps * per_step, budget.max_train_seconds, warm_start_throughput(engine))
    capacity = int(reach * (1 - FIRST_PASS_REPLAY_SHARE))
    # earlier cycles' held-out rows the gate judges on: they stay in the backlog, untrained, while in the window
    window = gate_window(engine, consumer, gate.gate_window_cycles - 1)
    backlog = training_backlog(engine, consumer, max(0, min(cfg.max_backlog_rows, capacity - len(train_part))),
                               exclude_ids=window["id"] if len(window) else ())
    judged_before = examples_of(window) if len(window) else examples.iloc[0:0]
    # scores the champion gave queued rows in earlier cycles: not computed again while it is the same version
    queued = [part for part in (window, backlog) if len(part)]
    known = known_scores(pd.concat(queued) if queued else pd.DataFrame(),
                         champion.version if champion_model is not None else None)
    waiting = examples_of(backlog.drop(columns="reason")) if len(backlog) else pd.DataFrame()
    replay = pd.DataFrame()
    if rebase and replay_before is not None:  # the recent window, in place of the replay sample
        from freshrec.rebase import recent_rows

        recent = recent_rows(engine, consumer, replay_before, cfg.rebase_rows)
        if len(recent):
            replay = examples_of(recent)
    elif replay_before is not None and cfg.replay_ratio > 0:
        fresh = len(train_part) + len(waiting)
        older = replay_sample(engine, consumer, replay_before, replay_rows(fresh, cfg.replay_ratio, reach),
                              replay_seed(cfg.seed, replay_before))
        if len(older):
            replay = examples_of(older)
    # Fresh rows (this cycle's and the backlog's) newest first, then the replayed ones (trainer.batch_order).
    fresh_set = pd.concat([part for part in (train_part, waiting) if len(part)], ignore_index=True)
    if len(fresh_set):
        fresh_set = fresh_set.sort_values(["occurred_at", "id"], ascending=False, kind="stable", ignore_index=True)
    train_set = pd.concat([part for part in (fresh_set, replay) if len(part)], ignore_index=True)

    lr_state = learning_rate_state(engine, cfg.learning_rate)
    if rebase:  # a fresh start: the configured rate (its budget: above)
        lr_state = LrState(cfg.learning_rate, cfg.learning_rate)
    if warm:
        candidate, config = load_artifact(champion.artifact)  # warm start: a second copy of the champion
    else:
        config = new_model_config(cfg.model, cfg.train_mode, max_item_tokens=cfg.max_item_tokens,
                                  max_user_tokens=cfg.max_user_tokens, history_len=cfg.history_len, seed=cfg.seed,
                                  id_buckets=cfg.id_buckets, category_rate=cfg.category_rate,
                                  recent_rate=cfg.recent_rate, item_quality=cfg.item_quality,
                                  session_rate=cfg.session_rate)
        candidate = build_model(config)
    fresh = len(fresh_set)  # train_set starts with them: every one before replay repeats
    cand_tokenizer = tokenizer if config.base_model == (champion_config.base_model if champion_config
                                                         else cfg.model) else load_tokenizer(config.base_model)
    # The wide part (wide.py), before the gradient steps so that they learn around it: a new lineage fits it to all
    # its rows from the hand-set prior; otherwise the running posterior takes the fresh rows that have not entered
    # it yet (not those a budget left in an earlier cycle: they entered then), offset by the champion's logit less
    # its wide term in a warm start (zero in a rebase, whose deep part starts at zero). No gradient step moves it.
    prior = _wide_prior(engine, candidate, config, champion_model if warm else None) if config.side_features else None
    wide_fit = None
    if prior is not None:
        if prior[1] == "hand-set":
            rows, offset = train_set, None
        else:
            entered = backlog["id"][backlog["reason"] == "not_trained"] if len(backlog) else []
            rows = fresh_set[~fresh_set["id"].isin(entered)] if fresh else fresh_set
            offset = (_champion_offset(champion_model, tokenizer, champion_config, rows, known, device, cache)
                      if warm and len(rows) else None)
        wide_fit = _fit_wide(candidate, config, prior, cfg.wide_memory_rows, rows, offset)
    stats = train(candidate, cand_tokenizer, config, train_set, budget, progress, learning_rate=lr_state.lr,
                  fresh_rows=fresh, fresh_block=FRESH_BLOCK_BATCHES * per_step, head_only=head_only, cache=cache)
    log.info("trained %d steps at lr %.2e on %d rows (%d from the backlog, %d replayed) in %.1f s, "
             "%.0f examples/s, loss %.4f -> %.4f; fresh rows trained %d of %d", stats.steps, lr_state.lr,
             len(train_set), len(waiting), len(replay), stats.seconds, stats.examples_per_s, stats.first_loss or 0,
             stats.last_loss or 0, stats.fresh_rows_trained, stats.fresh_rows)
    outcome.seconds["train"] = time.perf_counter() - timer

    timer = time.perf_counter()
    # The gate's rows: this batch's held-out rows and the window's (earlier cycles' held-out rows, untrained).
    holdout = holdout.copy()
    judged = pd.concat([holdout, judged_before], ignore_index=True)
    judged["candidate_score"] = predict(candidate, cand_tokenizer, config, judged, device, cache=cache)
    holdout["candidate_score"] = judged["candidate_score"].to_numpy()[:len(holdout)]
    if champion_model is not None and len(judged_before):
        judged.loc[len(holdout):, "champion_score"] = champion_scores(
            champion_model, tokenizer, champion_config, judged_before, known, device, cache)
    metrics["gate_rows"] = {"batch": len(holdout), "earlier_cycles": len(judged_before),
                            "users": int(judged["user_id"].nunique())}
    metrics["candidate"] = evaluate(judged["user_id"], judged["label"], judged["candidate_score"],
                                    gate.min_eval_rows)
    if "champion_score" in judged:
        metrics["champion"] = evaluate(judged["user_id"], judged["label"], judged["champion_score"],
                                       gate.min_eval_rows)
        # the gate judges the paired difference with its uncertainty, not two point estimates
        metrics["gain"] = paired_gains(judged["user_id"], judged["label"], judged["candidate_score"],
                                       judged["champion_score"], gate.gate_confidence, seed=cfg.seed)
    outcome.reference = drift_reference(examples, holdout, settings.drift_reference_rows, cfg.seed)
    probe, outcome.new_probe = probe_pairs(engine, examples, gate.probe_size, cfg.seed)
    probe_scores = None
    if champion_model is not None and len(probe):
        key = probe_key(probe)
        probe_scores = {"key": key, "scores": predict(candidate, cand_tokenizer, config, probe, device,
                                                      cache=cache).tolist()}
        kept = (champion_config.extra or {}).get(PROBE_SCORES) or {}  # the champion's, from when it was a candidate
        before = (np.asarray(kept["scores"], dtype=np.float64) if kept.get("key") == key
                  and len(kept.get("scores") or ()) == len(probe)
                  else predict(champion_model, tokenizer, champion_config, probe, device, cache=cache))
        moved = np.abs(np.asarray(probe_scores["scores"]) - before)
        metrics["probe"] = {"n": len(probe), "mean_abs_change": float(moved.mean()),
                            "max_abs_change": float(moved.max())}
    next_lr = lr_state.after(metrics["candidate"]["logloss"], (metrics.get("champion") or {}).get("logloss"))
    lineage = {"kind": "rebase" if rebase else "cold_start" if champion is None else "warm_start",
               **({"scope": "head"} if head_only else {}), **({"wide_fit": wide_fit[0]} if wide_fit else {}),
               "parent": champion.version if champion else None, **({"reason": rebase} if rebase else {})}
    if rebase:
        metrics["rebase"] = {"reason": rebase, "window_rows": len(replay)}
    config.extra = {**(config.extra or {}), "lr_state": asdict(next_lr), "cold_start": champion is None,
                    "lineage": lineage, **({"wide_posterior": wide_fit[1].to_json()} if wide_fit else {}),
                    **({PROBE_SCORES: probe_scores} if probe_scores else {}),
                    "last_train": {"steps": stats.steps, "examples": stats.examples, "loss": stats.last_loss,
                                   "examples_per_s": round(stats.examples_per_s, 3),
                                   "learning_rate": lr_state.lr}}
    if cache is not None:
        metrics["embeddings"] = {"encoded": cache.encoded,
                                 "from_store": cache.store.hits if cache.store is not None else 0}
    outcome.seconds["evaluate"] = time.perf_counter() - timer
    outcome.trained = True
    outcome.holdout = holdout
    outcome.metrics = metrics
    outcome.artifact = save_artifact(candidate, config)
    outcome.train_rows = len(train_set)
    outcome.backlog_rows = len(waiting)
    outcome.replay_rows = len(replay)
    # Fresh rows the budget did not reach stay queued (backlog rows) or join the queue: later cycles train the
    # newest first; past FRESHREC_MAX_BACKLOG_ROWS the oldest leave it, counted (cycles.py): none silently.
    trained_ids = set(fresh_set["id"][stats.trained_mask[:fresh]].astype(int).tolist()) if fresh else set()
    outcome.backlog_used = [i for i in (waiting["id"].astype(int).tolist() if len(waiting) else [])
                            if i in trained_ids]
    outcome.backlog_add = {"held_out": holdout["id"].astype(int).tolist(),
                           "not_trained": [i for i in train_part["id"].astype(int).tolist() if i not in trained_ids]}
    outcome.stats = stats
    scored = [examples[["id", "champion_score"]]] if "champion_score" in examples else []
    if champion_model is not None and len(judged_before):
        scored.append(judged[["id", "champion_score"]].iloc[len(holdout):])
    if scored:
        both = pd.concat(scored, ignore_index=True).drop_duplicates("id")
        outcome.champion_scores = pd.Series(both["champion_score"].to_numpy(dtype=np.float64),
                                            index=both["id"].to_numpy(dtype=np.int64))
    outcome.candidate_scores = pd.Series(judged["candidate_score"].to_numpy(dtype=np.float64),
                                         index=judged["id"].to_numpy(dtype=np.int64))
    return outcome
