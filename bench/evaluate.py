"""Prequential evaluation: does a model updated every cycle recommend better than the alternatives?

    python -m bench.evaluate --movielens ../shared/data/ml-latest-small [--cycle-rows 1000] [--score-cycles 10]
    python -m bench.evaluate --synthetic [--cycle-rows 500] [--score-cycles 10]

The stream (MovieLens ratings in time order, label rating >= 4; or the synthetic stream with its drift point)
is loaded into a scratch database `freshrec_eval` and replayed through freshrec's real ingestion, in cycles of
--cycle-rows, stage by stage through freshrec.steps (the functions the flow's tasks call) with one Settings: the
environment's FRESHREC_* values plus the run's explicit overrides (model, one epoch, the time budget, no bot rule;
--set NAME=VALUE for more), recorded in results.json. Everything before the scored window is ingested first (no
training), its last --warmup-train-rows go through one cold-start cycle (the first champion), then each scored
cycle is scored by every contender *before* any of them learns from it (test-then-train), with the same metric code:

  popularity        smoothed like-rate of the item so far
  user+item rates   smoothed user and item like-rates combined in log-odds
  ... (per event)   the same, updated after every event: the information freshrec's side features have
  user-in-genre ... the same with the user's rate in the film's genres (freshrec's FRESHREC_CATEGORY_RATE input)
  ...+recent...     plus the user's recent departure from their overall rate (FRESHREC_RECENT_RATE), by hand
  river logreg      online logistic regression over user, item, genre and user x genre (river)
  frozen            freshrec's first champion, never updated (its inputs still follow the data)
  freshrec          the champion in service, updated every cycle: LoRA warm start, replay, the publish gate
  full retrain      a model trained from the base on a sample of all data so far, every --retrain-every cycles
                    (--retrain-rows rows, --retrain-seconds of training)

Writes <out>/results.json (per-cycle AUC, log loss, NDCG@10, seconds and peak RSS per contender), results.md
and prequential_auc.png (AUC and NDCG@10 per cycle). AUC and log loss are pooled over the scored events; NDCG@10
(scikit-learn's, tie-aware) ranks each user's items within a cycle and is reported per cycle and as the mean over
cycles; NDCG@10 as served ranks the same lists with each user's state at their first event in the cycle, as
serving ranks one user's candidates (as_served). Differences to freshrec come with 95% intervals from bootstraps
over users. Needs the 'bench' extra (river, matplotlib).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

CONTENDERS = ["popularity", "user+item rates", "user+item rates (per event)", "user-in-genre+item rates (per event)",
              "user-in-genre+recent+item rates (per event)", "river logreg", "frozen", "freshrec", "full retrain"]


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Stream:
    """freshrec's own cycle, stage by stage through freshrec.steps (the functions the flow's tasks call) with one
    Settings, keeping the rows and the champion's scores that the flow does not return."""

    def __init__(self, engine, settings):
        self.engine, self.settings = engine, settings
        self.champion = None  # the champion the latest cycle scored its rows with

    def rows(self, n: int):
        """The settings with one cycle taking at most n rows (the only thing that differs between cycles)."""
        return self.settings.model_copy(update={"max_batch_rows": int(n)})

    def pull(self, settings, patience_s: float = 600.0):
        """The next batch, waiting while rows that are already committed sit behind the transaction horizon: the
        server is shared, and another database's open transaction holds back every row committed after it
        started (ingest.pull_new_interactions). Without the wait a cycle would be cut short, or the warm-up
        would end early."""
        from freshrec import steps

        deadline = time.monotonic() + patience_s
        while True:
            pulled = steps.pull(settings, self.engine)
            if pulled.rows >= settings.max_batch_rows or not pulled.lag.rows_behind or time.monotonic() > deadline:
                return pulled
            time.sleep(0.5)

    def ingest_only(self, rows: int) -> pd.DataFrame:
        """Take `rows` rows through pull, validation and commit, without training; returns the clean rows."""
        from freshrec import cycles, steps

        taken = []
        while rows > 0:
            settings = self.rows(min(rows, 50_000))
            pulled = self.pull(settings)
            if not pulled.rows:
                break
            validated = steps.validate(settings, self.engine, pulled)
            cycles.commit_batch(self.engine, steps.begin(settings, self.engine), pulled, validated)
            taken.append(validated.clean)
            rows -= pulled.rows
        return pd.concat(taken, ignore_index=True) if taken else pd.DataFrame()

    def cycle(self, rows: int):
        """One full freshrec cycle on the next `rows` rows; returns (outcome, summary)."""
        from freshrec import steps

        settings = self.rows(rows)
        cycle_id = steps.begin(settings, self.engine)
        pulled = self.pull(settings)
        validated = steps.validate(settings, self.engine, pulled)
        champion = self.champion = steps.load_champion(settings, self.engine)  # the bench scores as served with it
        outcome = report = None
        if validated.accepted:  # as the flow: a rejected batch trains nothing and measures no drift
            outcome = steps.fine_tune(settings, self.engine, pulled, validated, champion)
            report = steps.drift(settings, outcome, champion)
        decision = steps.decide(settings, validated, outcome, report)
        summary = steps.commit(settings, self.engine, cycle_id, pulled, validated, outcome, report, decision)
        return outcome, summary


def with_genres(engine, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the baselines read: user, item, label, time, and the item's categories as freshrec splits them."""
    from freshrec.features import fetch_items, item_categories

    items = fetch_items(engine, sorted(set(frame["item_id"].astype("int64"))))
    genres = {int(i): item_categories(c) for i, c in zip(items.index, items["category"])}
    out = frame[["user_id", "item_id", "label", "occurred_at"]].astype(
        {"user_id": "int64", "item_id": "int64", "label": "int64"})
    return out.assign(genres=[genres.get(int(i), []) for i in out["item_id"]])


RAW_COLUMNS = ["id", "user_id", "item_id", "event_type", "label", "dwell_ms", "occurred_at"]


def as_served(engine, examples: pd.DataFrame, history_len: int) -> pd.DataFrame:
    """The cycle's rows as serving ranks them: each user's rows with the features of the moment of that user's
    first event in the cycle (history text, like-rates and the items' rates, all strictly before it), so within a
    user's list only the item varies, as in `rank_items`, which scores one user's candidates with one user state.
    The per-event rows (`examples`) give each of a user's rows the state just before it: ranking them by score then
    also ranks the moments at which the user rated, which no request to serving ever asks."""
    from freshrec.features import build_examples

    first = examples.groupby("user_id")["occurred_at"].transform("min")
    return build_examples(engine, examples[RAW_COLUMNS].assign(occurred_at=first), history_len, categories=True,
                          recent=True, quality=True, session=True)


def served_prior_scores(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The hand-set per-event priors' log-odds from freshrec's own side features (the bench's pandas copy of them
    is checked equal every cycle: inputs_max_abs_diff), for rows whose features are not per event (as_served)."""
    from bench.baselines import logit
    from freshrec.features import CATEGORY_RATE, RECENT_RATE

    user, item = logit(frame["user_rate"]), logit(frame["item_rate"])
    genre = logit(frame[CATEGORY_RATE])
    return {"user+item rates (per event)": user + item, "user-in-genre+item rates (per event)": genre + item,
            "user-in-genre+recent+item rates (per event)": genre + item + logit(frame[RECENT_RATE]) - user}


def retrain_from_base(engine, settings, history: pd.DataFrame, rows: int, seed: int, seconds: float):
    """A model trained from the base encoder on a sample of everything so far (the cost reference)."""
    from freshrec import wide
    from freshrec.features import build_examples, inputs_read, side_columns
    from freshrec.model import build_model, load_tokenizer, new_model_config
    from freshrec.trainer import train

    cfg = settings.training
    sample = history.sample(n=min(rows, len(history)), random_state=seed).sort_values("occurred_at")
    examples = build_examples(engine, sample, cfg.history_len, **inputs_read(cfg))
    config = new_model_config(cfg.model, cfg.train_mode, max_item_tokens=cfg.max_item_tokens,
                              max_user_tokens=cfg.max_user_tokens, history_len=cfg.history_len, seed=seed,
                              id_buckets=cfg.id_buckets, category_rate=cfg.category_rate,
                              recent_rate=cfg.recent_rate, item_quality=cfg.item_quality,
                              session_rate=cfg.session_rate)
    model = build_model(config)
    budget = cfg.model_copy(update={"epochs": 1, "max_train_steps": 10**6,
                                    "max_train_seconds": seconds})
    if config.side_features:  # as freshrec's new lineages: the wide part fitted from the hand-set prior first
        wide.fit_examples(model, config, examples, wide.current(model, side_columns(config)))
    train(model, load_tokenizer(cfg.model), config, examples, budget)
    return model, config


def eval_settings(args):
    """The one Settings of the run: the environment's, with the evaluation's explicit overrides."""
    from freshrec.settings import load_settings

    overrides = {"model": args.model, "epochs": 1, "max_train_steps": 1_000_000,
                 "max_train_seconds": args.max_train_seconds,
                 "bot_events_per_minute": 1_000_000}  # MovieLens users rate dozens of films a minute: not a bot there
    for item in args.set or []:
        name, _, value = item.partition("=")
        try:
            overrides[name.strip()] = json.loads(value)
        except ValueError:
            overrides[name.strip()] = value
    return load_settings(**overrides)


def run(args) -> dict:
    from bench.common import scratch_database
    from freshrec.metrics import binary_metrics, ndcg_per_user
    from freshrec.model import load_tokenizer
    from freshrec.artifacts import load_artifact
    from freshrec.registry import load_champion
    from freshrec.inference import pick_device, predict
    from bench.baselines import (Popularity, RiverLogisticRegression, UserGenreItemRatesPerEvent,
                                 UserGenreRecentItemRatesPerEvent, UserItemRates, UserItemRatesPerEvent)

    settings = eval_settings(args)
    engine, _ = scratch_database(args.database, settings)
    drift_cycle = None
    if args.movielens:
        from freshrec.movielens import load_movielens

        total = load_movielens(engine, Path(args.movielens)).events_inserted
        stream_name = "MovieLens ml-latest-small"
    else:
        from freshrec.generate import StreamSpec, insert_stream

        total = args.synthetic_events
        drift_at = total - args.score_cycles * args.cycle_rows // 2
        insert_stream(engine, StreamSpec(users=300, items=400, events=total, drift_at=drift_at / total, seed=1))
        drift_cycle = args.score_cycles // 2
        stream_name = f"synthetic, interests shift at event {drift_at} (scored cycle {drift_cycle + 1})"
    with engine.connect() as conn:  # fresh statistics for the planner and the replay sample size
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
    warmup = total - args.score_cycles * args.cycle_rows
    if warmup - args.warmup_train_rows <= 0:
        raise SystemExit(f"{total} events leave no history before the {args.warmup_train_rows} cold-start rows and the "
                         f"{args.score_cycles} scored cycles of {args.cycle_rows}: use fewer or smaller cycles, "
                         "fewer --warmup-train-rows, or a longer stream.")
    stream = Stream(engine, settings)
    baselines = [Popularity(), UserItemRates(), UserItemRatesPerEvent(), UserGenreItemRatesPerEvent(),
                 UserGenreRecentItemRatesPerEvent(), RiverLogisticRegression()]

    started = time.perf_counter()
    history = stream.ingest_only(warmup - args.warmup_train_rows)
    for b in baselines:
        b.warm(with_genres(engine, history))
    outcome, summary = stream.cycle(args.warmup_train_rows)  # cold start: the first champion
    if outcome is None:
        raise SystemExit(f"the cold-start batch was rejected: {summary.decision.get('reasons')}")
    cold = outcome.examples
    history = pd.concat([history, cold[["id", "user_id", "item_id", "event_type", "label", "dwell_ms",
                                         "occurred_at"]]], ignore_index=True)
    for b in baselines:
        b.warm(with_genres(engine, cold))
    first = load_champion(engine)
    if first is None:
        raise SystemExit(f"the cold-start candidate was not published: {summary.decision.get('reasons')}")
    frozen, frozen_cfg = load_artifact(first.artifact, first.sha256)
    tokenizer = load_tokenizer(frozen_cfg.base_model)
    device = pick_device(settings.device)
    print(f"warm-up: {warmup} rows in {time.perf_counter() - started:.0f} s; first champion v{first.version} "
          f"(held-out AUC {summary.metrics['candidate']['auc']:.3f})", file=sys.stderr)

    retrained = served = None
    cycles_out = []
    served_users: dict[str, list] = {c: [] for c in SERVED}  # per cycle, each user's NDCG@10 as served
    pooled: dict[str, list] = {c: [] for c in CONTENDERS}
    ndcg_users: dict[str, list] = {c: [] for c in CONTENDERS}  # per cycle, each user's NDCG@10
    for k in range(args.score_cycles):
        row: dict = {"cycle": k + 1, "contenders": {}}
        t0 = time.perf_counter()
        outcome, summary = stream.cycle(args.cycle_rows)
        freshrec_s = time.perf_counter() - t0
        scoring = stream.champion  # the version that scored this cycle's rows before anyone learned from them
        if served is None or served[0] != scoring.version:
            served = (scoring.version, *load_artifact(scoring.artifact, scoring.sha256))
        if outcome is None:
            raise SystemExit(f"scored cycle {k + 1}'s batch was rejected: {summary.decision.get('reasons')}")
        ex = outcome.examples
        if "champion_score" not in ex:
            raise SystemExit("freshrec had no champion to score with")
        scores, seconds = {"freshrec": ex["champion_score"].to_numpy()}, {"freshrec": freshrec_s}
        t0 = time.perf_counter()
        scores["frozen"] = predict(frozen, tokenizer, frozen_cfg, ex, device)
        seconds["frozen"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if k % args.retrain_every == 0:
            retrained = retrain_from_base(engine, settings, history, args.retrain_rows, seed=k,
                                          seconds=args.retrain_seconds)
        scores["full retrain"] = predict(retrained[0], tokenizer, retrained[1], ex, device)
        seconds["full retrain"] = time.perf_counter() - t0
        rows = with_genres(engine, ex)
        for b in baselines:
            t0 = time.perf_counter()
            scores[b.name] = b.score(rows)
            b.learn(rows)
            seconds[b.name] = time.perf_counter() - t0
        copy = next(b for b in baselines if isinstance(b, UserGenreRecentItemRatesPerEvent)).last_inputs
        row["inputs_max_abs_diff"] = inputs_difference(copy, ex, settings.category_rate, settings.recent_rate,
                                                     settings.item_quality, settings.session_rate)
        history = pd.concat([history, ex[RAW_COLUMNS]], ignore_index=True)
        served_ex = as_served(engine, ex, settings.training.history_len)
        served_scores = {"freshrec": predict(served[1], tokenizer, served[2], served_ex, device),
                         "frozen": predict(frozen, tokenizer, frozen_cfg, served_ex, device),
                         "full retrain": predict(retrained[0], tokenizer, retrained[1], served_ex, device),
                         **served_prior_scores(served_ex)}
        for name in SERVED:
            per_user = ndcg_per_user(served_ex["user_id"], served_ex["label"], served_scores[name], 10)
            served_users[name].append(per_user)
            row.setdefault("ndcg_at_10_as_served", {})[name] = float(per_user.mean()) if len(per_user) else None
        for name in CONTENDERS:
            m = binary_metrics(ex["label"], scores[name], settings.min_eval_rows)
            per_user = ndcg_per_user(ex["user_id"], ex["label"], scores[name], 10)
            row["contenders"][name] = {"auc": m["auc"], "logloss": m["logloss"],
                                       "ndcg_at_10": float(per_user.mean()) if len(per_user) else None,
                                       "ndcg_users": len(per_user), "n": m["n"], "seconds": round(seconds[name], 2)}
            pooled[name].append((ex["label"].to_numpy(), scores[name], ex["user_id"].to_numpy()))
            ndcg_users[name].append(per_user)
        row["freshrec_published"] = summary.decision.get("published")
        row["drift"] = (summary.drift or {}).get("drifted_share")
        row["dataset_drift"] = bool((summary.drift or {}).get("dataset_drift"))
        row["drift_measured"] = (summary.drift or {}).get("status") == "measured"  # not: the adopting cycle
        row["drifted_columns"] = (summary.drift or {}).get("drifted_columns") or []  # which columns raise alarms
        row["fresh_coverage"] = (summary.train or {}).get("fresh_coverage")
        row["rebase"] = bool((outcome.metrics or {}).get("rebase"))
        # of freshrec's cycle, the model's compute (champion scoring, training, evaluation: what full retrain's
        # seconds count); the rest is pulling, validation, drift and the commit
        row["freshrec_model_seconds"] = round(sum(outcome.seconds.values()), 2)
        row["freshrec_phase_seconds"] = {k: round(v, 2) for k, v in outcome.seconds.items()}
        row["replay_rows"] = outcome.replay_rows
        row["peak_rss_mb"] = rss_mb()
        cycles_out.append(row)
        print(f"cycle {k + 1}/{args.score_cycles}: " + ", ".join(
            f"{n} {row['contenders'][n]['auc']:.3f}" for n in CONTENDERS), file=sys.stderr)

    result = {"stream": stream_name, "model": args.model, "cycle_rows": args.cycle_rows,
              "full_retrain": {"every_cycles": args.retrain_every, "rows": args.retrain_rows,
                               "train_seconds": args.retrain_seconds},
              "scored": f"the last {args.score_cycles * args.cycle_rows} of {total} events "
                        f"({args.score_cycles} cycles) after {warmup} warm-up events",
              "settings": settings.model_dump(mode="json", exclude={"database_url"}),
              "totals": totals(cycles_out, pooled, settings.min_eval_rows),
              "comparisons": {f"freshrec - {other}": {**paired_auc_difference(pooled["freshrec"], pooled[other]),
                                                      **paired_ndcg_difference(ndcg_users["freshrec"],
                                                                               ndcg_users[other])}
                              for other in COMPARED},
              "comparisons_as_served": {f"freshrec - {other}": paired_ndcg_difference(served_users["freshrec"],
                                                                                      served_users[other])
                                        for other in COMPARED},
              "cycles": cycles_out, "wall_s": round(time.perf_counter() - started), "peak_rss_mb": rss_mb()}
    coverage = [c["fresh_coverage"] for c in cycles_out if c["fresh_coverage"] is not None]
    result["freshrec_cycles"] = {
        "published_share": round(np.mean([bool(c["freshrec_published"]) for c in cycles_out]), 3),
        "drift_measured_cycles": sum(c["drift_measured"] for c in cycles_out),
        "dataset_drift_share": round(float(np.mean([c["dataset_drift"] for c in cycles_out if c["drift_measured"]]
                                                   or [np.nan])), 3),
        "mean_fresh_coverage": round(float(np.mean(coverage)), 4) if coverage else None,
        "rebases": sum(c["rebase"] for c in cycles_out),
        "model_seconds_per_cycle": round(float(np.mean([c["freshrec_model_seconds"] for c in cycles_out])), 2),
        # where they go: scoring the batch (test-then-train), training (with reading and encoding its rows) and
        # evaluation (the gate's rows and the probe)
        "phase_seconds_per_cycle": {phase: round(float(np.mean([c["freshrec_phase_seconds"].get(phase, 0.0)
                                                                 for c in cycles_out])), 2)
                                    for phase in ("score", "train", "evaluate")},
        "replay_rows_per_cycle": round(float(np.mean([c["replay_rows"] for c in cycles_out])), 1),
        "drifted_columns": dict(Counter(col for c in cycles_out for col in c["drifted_columns"]).most_common())}
    if drift_cycle is not None:
        result["recovery_cycles"] = recovery(cycles_out, drift_cycle)
        result["after_shift"] = {"freshrec - frozen": paired_auc_difference(pooled["freshrec"][drift_cycle:],
                                                                            pooled["frozen"][drift_cycle:]),
                                 "drift_measured_before_shift": sum(c["drift_measured"]
                                                                    for c in cycles_out[:drift_cycle]),
                                 "dataset_drift_before_shift": sum(c["dataset_drift"]
                                                                   for c in cycles_out[:drift_cycle]),
                                 "first_flag_after_shift": next((c["cycle"] - drift_cycle - 1 for c in
                                                                 cycles_out[drift_cycle:] if c["dataset_drift"]),
                                                                None)}
    return result


def inputs_difference(copy: pd.DataFrame, examples: pd.DataFrame, category_rate: bool,
                      recent_rate: bool = False, item_quality: bool = False,
                      session_rate: bool = False) -> float:
    """Largest difference between freshrec's side features of the cycle's rows (from SQL) and the per-event
    contenders' pandas copy of them: 0 when the bench's baselines see exactly the information freshrec's inputs
    hold (they learn only clean rows, so quarantined rows would show here)."""
    from freshrec.features import CATEGORY_RATE, ITEM_QUALITY, RECENT_RATE, SESSION_RATE, SIDE_COLUMNS

    columns = [*SIDE_COLUMNS, *([CATEGORY_RATE] if category_rate else []), *([RECENT_RATE] if recent_rate else []),
               *([ITEM_QUALITY] if item_quality else []), *([SESSION_RATE] if session_rate else [])]
    return round(float(np.abs(copy[columns].to_numpy(float) - examples[columns].to_numpy(float)).max()), 9)


# contenders whose scores can be computed for rows as served (as_served): the models, and the hand-set priors from
# freshrec's side features
SERVED = ("freshrec", "frozen", "full retrain", "user+item rates (per event)", "user-in-genre+item rates (per event)",
          "user-in-genre+recent+item rates (per event)")
COMPARED = ("frozen", "user+item rates (per event)", "user-in-genre+item rates (per event)",
            "user-in-genre+recent+item rates (per event)", "full retrain")


def totals(cycles: list[dict], pooled: dict[str, list], min_rows: int) -> dict:
    """Per contender: AUC and log loss pooled over the scored events; NDCG@10 as the mean of the per-cycle NDCG
    (a cycle ranks each user's items of that cycle; pooling cycles would rank items across cycles)."""
    from freshrec.metrics import binary_metrics

    out = {}
    for name in CONTENDERS:
        m = binary_metrics(np.concatenate([p[0] for p in pooled[name]]),
                           np.concatenate([p[1] for p in pooled[name]]), min_rows)
        ndcg = [c["contenders"][name]["ndcg_at_10"] for c in cycles
                if c["contenders"][name]["ndcg_at_10"] is not None]
        served = [c["ndcg_at_10_as_served"][name] for c in cycles
                  if (c.get("ndcg_at_10_as_served") or {}).get(name) is not None]
        out[name] = {"auc": m["auc"], "logloss": m["logloss"], "ndcg_at_10": float(np.mean(ndcg)) if ndcg else None,
                     "ndcg_at_10_as_served": float(np.mean(served)) if served else None,
                     "ndcg_cycles": len(ndcg), "n": m["n"],
                     "seconds_per_cycle": round(float(np.mean([c["contenders"][name]["seconds"] for c in cycles])),
                                                2)}
    return out


def paired_auc_difference(a: list, b: list, resamples: int = 1000, seed: int = 0) -> dict:
    """AUC(a) - AUC(b) on the same scored events, with a 95% interval from a bootstrap over users (a user's
    events move together, so resampling rows would overstate the certainty)."""
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([p[0] for p in a])
    score_a, score_b = np.concatenate([p[1] for p in a]), np.concatenate([p[1] for p in b])
    users = np.concatenate([p[2] for p in a])
    uniq, inverse = np.unique(users, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == k) for k in range(len(uniq))]
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        rows = np.concatenate([rows_of[k] for k in rng.integers(0, len(uniq), len(uniq))])
        if 0 < y[rows].sum() < len(rows):
            diffs.append(roc_auc_score(y[rows], score_a[rows]) - roc_auc_score(y[rows], score_b[rows]))
    point = float(roc_auc_score(y, score_a) - roc_auc_score(y, score_b))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"auc_difference": round(point, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "share_of_resamples_above_zero": round(float(np.mean(np.array(diffs) > 0)), 3), "users": len(uniq)}


def paired_ndcg_difference(a: list, b: list, resamples: int = 1000, seed: int = 0) -> dict:
    """NDCG@10(a) - NDCG@10(b) as the mean over cycles of the per-cycle mean of per-user differences (the same
    statistic as the table's NDCG), with a 95% interval from a bootstrap over users: each resample draws users
    with replacement and weighs each user's differences, in every cycle they appear in, by their draws.
    a, b: per cycle, a Series of each user's NDCG@10 (the same users for both: they have the same labels)."""
    if not any(len(x) for x in a):
        return {"ndcg_difference": None, "ndcg_ci95": None, "ndcg_users": 0}
    users = np.unique(np.concatenate([x.index.to_numpy() for x in a if len(x)]))
    diff = np.zeros((len(a), len(users)))  # cycle x user: the difference where the user counts in the cycle
    present = np.zeros_like(diff)
    for c, (x, y) in enumerate(zip(a, b)):
        cols = np.searchsorted(users, x.index.to_numpy())
        diff[c, cols], present[c, cols] = (x - y.reindex(x.index)).to_numpy(), 1.0

    def statistic(weights: np.ndarray) -> np.ndarray:  # weights: resamples x users -> resamples
        total, counted = weights @ (diff * present).T, weights @ present.T
        per_cycle = np.where(counted > 0, total / np.maximum(counted, 1e-12), np.nan)
        return np.nanmean(per_cycle, axis=1)

    rng = np.random.default_rng(seed)
    draws = np.stack([np.bincount(rng.integers(0, len(users), len(users)), minlength=len(users))
                      for _ in range(resamples)]).astype(float)
    diffs = statistic(draws)
    point = float(statistic(np.ones((1, len(users))))[0])
    lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
    return {"ndcg_difference": round(point, 4), "ndcg_ci95": [round(float(lo), 4), round(float(hi), 4)],
            "ndcg_users": len(users)}


def recovery(cycles: list[dict], drift_cycle: int, margin: float = 0.02) -> dict:
    """Cycles after the drift point until a contender's AUC is back within margin of its pre-drift level."""
    out = {}
    for name in CONTENDERS:
        aucs = [c["contenders"][name]["auc"] for c in cycles]
        before = [a for a in aucs[max(0, drift_cycle - 3):drift_cycle] if a is not None]
        level = float(np.mean(before)) if before else None
        after = aucs[drift_cycle:]
        back = next((i for i, a in enumerate(after) if level is not None and a is not None and a >= level - margin),
                    None)
        out[name] = {"pre_drift_auc": level, "cycles_to_recover": back}
    return out


def write_outputs(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))

    def fmt(value, sign: str = "") -> str:
        return "n/a" if value is None else f"{value:{sign}.4f}"

    lines = [f"Stream: {result['stream']}; model {result['model']}; scored {result['scored']}.", "",
             "AUC and log loss over all scored events; NDCG@10 per cycle (each user's items of the cycle, tied "
             "scores share their gain), then the mean over cycles. As served: each user's rows of the cycle "
             "scored with the user's state at their first event in it (history, like-rates, item rates), as serving "
             "ranks one user's candidates; the per-event NDCG gives each row the state just before it, so it also "
             "ranks the moments the user rated at.", "",
             "| contender | AUC | log loss | NDCG@10 (mean over cycles) | NDCG@10 as served | seconds per cycle |",
             "|---|---|---|---|---|---|"]
    for name, t in sorted(result["totals"].items(), key=lambda kv: -(kv[1]["auc"] or 0)):
        lines.append(f"| {name} | {fmt(t['auc'])} | {fmt(t['logloss'])} | {fmt(t['ndcg_at_10'])} | "
                     f"{fmt(t.get('ndcg_at_10_as_served'))} | {t['seconds_per_cycle']} |")
    lines += ["", "| comparison (same events) | AUC difference | 95% interval | NDCG@10 difference | 95% interval |",
              "|---|---|---|---|---|"]
    for name, c in result.get("comparisons", {}).items():
        ndcg_ci = c.get("ndcg_ci95") or [None, None]
        lines.append(f"| {name} | {c['auc_difference']:+.4f} | {c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f} | "
                     f"{fmt(c.get('ndcg_difference'), '+')} | {fmt(ndcg_ci[0], '+')} to {fmt(ndcg_ci[1], '+')} |")
    if result.get("comparisons_as_served"):
        lines += ["", "| comparison, as served | NDCG@10 difference | 95% interval |", "|---|---|---|"]
        for name, c in result["comparisons_as_served"].items():
            ci = c.get("ndcg_ci95") or [None, None]
            lines.append(f"| {name} | {fmt(c.get('ndcg_difference'), '+')} | {fmt(ci[0], '+')} to "
                         f"{fmt(ci[1], '+')} |")
    lines += ["", "Intervals: bootstrap over users (a user's events move together)."]
    gaps = [c["inputs_max_abs_diff"] for c in result["cycles"] if c.get("inputs_max_abs_diff") is not None]
    if gaps:
        lines += [f"freshrec's side features (SQL, point in time) vs the per-event contenders' pandas copy: largest "
                  f"difference {max(gaps):.2g} over the scored rows."]
    fc = result.get("freshrec_cycles")
    if fc:
        lines += ["", f"freshrec's cycles: {fc['published_share']:.0%} of candidates published, dataset drift "
                  f"flagged in {fc['dataset_drift_share']:.0%} of the {fc['drift_measured_cycles']} measured cycles "
                  f"(the first after a cold start adopts its batch as the reference), fresh-row coverage "
                  f"{fc['mean_fresh_coverage']} "
                  f"on average, {fc['rebases']} rebase candidate(s); of its seconds per cycle, "
                  f"{fc['model_seconds_per_cycle']} the model's (scoring, training, evaluation: what the other "
                  "contenders' seconds count), the rest pulling, validation, drift and the commit."]
        if fc.get("phase_seconds_per_cycle"):
            lines += ["Of the model's seconds per cycle: " + ", ".join(
                f"{phase} {s}" for phase, s in fc["phase_seconds_per_cycle"].items())
                + f"; {fc['replay_rows_per_cycle']} replayed rows drawn per cycle."]
        if fc.get("drifted_columns"):
            lines += ["Cycles in which each column drifted: " + ", ".join(
                f"{name} {n}" for name, n in fc["drifted_columns"].items()) + "."]
    shift = result.get("after_shift")
    if shift:
        d = shift["freshrec - frozen"]
        lines += [f"After the shift: freshrec - frozen AUC {d['auc_difference']:+.4f} ({d['ci95'][0]:+.4f} to "
                  f"{d['ci95'][1]:+.4f}); dataset drift flagged in {shift['dataset_drift_before_shift']} of the "
                  f"{shift['drift_measured_before_shift']} measured cycles before the shift, first flag "
                  f"{shift['first_flag_after_shift']} cycle(s) after it (0: the "
                  "cycle the shift starts in)."]
    if "recovery_cycles" in result:
        lines += ["", "| contender | AUC before the drift | cycles to recover (within 0.02) |", "|---|---|---|"]
        lines += [f"| {n} | {r['pre_drift_auc'] if r['pre_drift_auc'] is None else round(r['pre_drift_auc'], 3)} | "
                  f"{'not within the run' if r['cycles_to_recover'] is None else r['cycles_to_recover']} |"
                  for n, r in result["recovery_cycles"].items()]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    fig, (ax_auc, ax_ndcg) = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    cycle_numbers = [c["cycle"] for c in result["cycles"]]
    for ax, metric in ((ax_auc, "auc"), (ax_ndcg, "ndcg_at_10")):
        for name in CONTENDERS:
            values = [c["contenders"][name][metric] for c in result["cycles"]]
            ax.plot(cycle_numbers, [np.nan if v is None else v for v in values], marker="o", markersize=3,
                    label=name, linewidth=2.2 if name == "freshrec" else 1.2)
        ax.grid(alpha=0.3)
    ax_ndcg.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax_auc.set_ylabel("AUC (scored before training)")
    ax_ndcg.set_ylabel("NDCG@10 (per cycle)")
    ax_ndcg.set_xlabel(f"scored cycle ({result['cycle_rows']} interactions each)")
    ax_auc.set_title(f"Prequential AUC and NDCG@10: {result['stream']}", fontsize=10)
    ax_auc.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "prequential_auc.png", dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--movielens", help="folder of ml-latest-small")
    source.add_argument("--synthetic", action="store_true")
    parser.add_argument("--synthetic-events", type=int, default=12_000)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--cycle-rows", type=int, help="rows per cycle (default: 1000 on MovieLens, 500 on the "
                        "synthetic stream)")
    parser.add_argument("--score-cycles", type=int, default=10)
    parser.add_argument("--warmup-train-rows", type=int, default=3000)
    parser.add_argument("--retrain-every", type=int, default=5)
    parser.add_argument("--retrain-rows", type=int, default=3000)
    parser.add_argument("--max-train-seconds", type=float, default=60,
                        help="freshrec's training budget per cycle (FRESHREC_MAX_TRAIN_SECONDS)")
    parser.add_argument("--retrain-seconds", type=float,
                        help="full retrain's training budget each time it retrains (default: 4 x --max-train-seconds, "
                        "so a retrain every 5 cycles spends 0.8 of freshrec's budget a cycle); set it to compare "
                        "freshrec at another budget with the same retrain")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="a further setting of the run, e.g. --set holdout=users (JSON values allowed); "
                        "the environment's FRESHREC_* give the rest")
    parser.add_argument("--database", default="freshrec_eval",
                        help="scratch database (dropped and recreated) on the configured server")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    args.cycle_rows = args.cycle_rows or (1000 if args.movielens else 500)
    args.retrain_seconds = args.retrain_seconds or 4 * args.max_train_seconds
    if args.synthetic and args.synthetic_events - (args.score_cycles * args.cycle_rows + args.warmup_train_rows) <= 0:
        parser.error(f"--synthetic-events {args.synthetic_events} leave no history before the "
                     f"{args.warmup_train_rows} cold-start rows and {args.score_cycles} scored cycles of "
                     f"{args.cycle_rows}: use fewer or smaller cycles or more events")
    result = run(args)
    out = args.out / ("movielens" if args.movielens else "synthetic")
    write_outputs(result, out)
    print((out / "results.md").read_text())
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
