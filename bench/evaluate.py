"""Prequential evaluation: does a model updated every cycle recommend better than the alternatives?

    python -m bench.evaluate --movielens ../shared/data/ml-latest-small [--cycle-rows 1000] [--score-cycles 10]
    python -m bench.evaluate --synthetic [--cycle-rows 500] [--score-cycles 10]

The stream (MovieLens ratings in time order, label rating >= 4; or the synthetic stream with its drift point)
is loaded into a scratch database `freshrec_eval` and replayed through freshrec's real ingestion, in cycles of
--cycle-rows. Everything before the scored window is ingested first (no training), its last
--warmup-train-rows go through one cold-start cycle (the first champion), then each scored cycle is scored by
every contender *before* any of them learns from it (test-then-train), with the same metric code:

  popularity        smoothed like-rate of the item so far
  user+item rates   smoothed user and item like-rates combined in log-odds
  ... (per event)   the same, updated after every event: the information freshrec's side features have
  user-in-genre ... the same with the user's rate in the film's genres (freshrec's FRESHREC_CATEGORY_RATE input)
  river logreg      online logistic regression over user, item, genre and user x genre (river)
  frozen            freshrec's first champion, never updated (its inputs still follow the data)
  freshrec          the champion in service, updated every cycle: LoRA warm start, replay, the publish gate
  full retrain      a model trained from the base on a sample of all data so far, every --retrain-every cycles

Writes <out>/results.json (per-cycle AUC, log loss, NDCG@10, seconds and peak RSS per contender), results.md
and prequential_auc.png. Needs the 'bench' extra (river, matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

CONTENDERS = ["popularity", "user+item rates", "user+item rates (per event)", "user-in-genre+item rates (per event)",
              "river logreg", "frozen", "freshrec",
              "full retrain"]


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Stream:
    """freshrec's own cycle, step by step (the same core functions the flow's tasks call), keeping the rows
    and the champion's scores that the flow does not return."""

    def __init__(self, engine, settings):
        from freshrec.registry import PublishPolicy, parse_thresholds
        from tasks.common import quality_rules, train_config

        self.engine, self.settings = engine, settings
        self.rules = quality_rules(settings)
        self.train_cfg = train_config(settings)
        self.policy = PublishPolicy(parse_thresholds(settings.publish_thresholds), settings.min_eval_rows,
                                    settings.max_probe_change)

    def ingest_only(self, rows: int) -> pd.DataFrame:
        """Take `rows` rows through pull, validation and commit, without training; returns the clean rows."""
        from freshrec import cycles, ingest, quality

        taken = []
        while rows > 0:
            pulled = ingest.pull_new_interactions(self.engine, self.settings.consumer, min(rows, 50_000))
            if not pulled.rows:
                break
            validated = quality.check_batch(self.engine, pulled, self.rules)
            cycles.commit_batch(self.engine, cycles.begin_cycle(self.engine, self.settings.consumer), pulled,
                                validated)
            taken.append(validated.clean)
            rows -= pulled.rows
        return pd.concat(taken, ignore_index=True) if taken else pd.DataFrame()

    def cycle(self, rows: int):
        """One full freshrec cycle on the next `rows` rows; returns (outcome, summary)."""
        from freshrec import cycles, drift, ingest, quality, registry
        from freshrec.summary import build_summary
        from freshrec.training import run_update

        cycle_id = cycles.begin_cycle(self.engine, self.settings.consumer)
        pulled = ingest.pull_new_interactions(self.engine, self.settings.consumer, rows)
        validated = quality.check_batch(self.engine, pulled, self.rules)
        champion = registry.load_champion(self.engine)
        outcome = run_update(self.engine, validated.clean, champion, self.train_cfg, consumer=self.settings.consumer,
                             replay_before=pulled.from_cursor)
        reference = pd.DataFrame(champion.reference_sample) if champion and champion.reference_sample else None
        report = drift.measure_drift(reference, drift.drift_frame(outcome.examples, "champion_score"),
                                     drift_share=self.settings.drift_share, sample_cap=self.settings.drift_sample_cap,
                                     min_rows=self.settings.drift_min_rows)
        decision = registry.decide(batch_accepted=validated.accepted, reject_reason=validated.reject_reason,
                                   trained=outcome.trained, skip_reason=outcome.skip_reason, metrics=outcome.metrics,
                                   has_champion=champion is not None, drift=report.result, policy=self.policy)
        summary = build_summary(cycle_id=cycle_id, consumer=self.settings.consumer, pulled=pulled,
                                validated=validated, outcome=outcome, drift=report, decision=decision,
                                stage_seconds={})
        reference_sample = (drift.reference_records(outcome.holdout, "candidate_score", self.settings.drift_sample_cap)
                            if outcome.trained else None)
        summary, _ = cycles.commit_cycle(self.engine, summary=summary, pulled=pulled, validated=validated,
                                         outcome=outcome, drift=report, drift_path=None, decision=decision,
                                         reference_sample=reference_sample)
        return outcome, summary


def with_genres(engine, frame: pd.DataFrame) -> pd.DataFrame:
    from freshrec.features import fetch_items

    items = fetch_items(engine, sorted(set(frame["item_id"].astype("int64"))))
    genres = {int(i): [g.strip() for g in str(d or c).split(",") if g.strip()]
              for i, d, c in zip(items.index, items["description"], items["category"])}
    out = frame[["user_id", "item_id", "label", "occurred_at"]].astype(
        {"user_id": "int64", "item_id": "int64", "label": "int64"})
    return out.assign(genres=[genres.get(int(i), []) for i in out["item_id"]])


def retrain_from_base(engine, settings, history: pd.DataFrame, rows: int, seed: int):
    """A model trained from the base encoder on a sample of everything so far (the cost reference)."""
    from freshrec.features import build_examples
    from freshrec.model import build_model, load_tokenizer, new_model_config
    from freshrec.training import train
    from tasks.common import train_config

    cfg = train_config(settings)
    sample = history.sample(n=min(rows, len(history)), random_state=seed).sort_values("occurred_at")
    examples = build_examples(engine, sample, cfg.history_len, cfg.category_rate)
    config = new_model_config(cfg.model, cfg.train_mode, max_item_tokens=cfg.max_item_tokens,
                              max_user_tokens=cfg.max_user_tokens, history_len=cfg.history_len, seed=seed,
                              id_buckets=cfg.id_buckets, category_rate=cfg.category_rate)
    model = build_model(config)
    budget = dict(cfg.__dict__, epochs=1, max_steps=10**6, max_seconds=settings.max_train_seconds * 4)
    train(model, load_tokenizer(cfg.model), config, examples, type(cfg)(**budget))
    return model, config


def run(args) -> dict:
    from bench.common import scratch_database
    from freshrec.metrics import evaluate
    from freshrec.model import load_artifact, load_tokenizer
    from freshrec.registry import load_champion
    from freshrec.settings import load_settings
    from freshrec.training import pick_device, predict
    from bench.baselines import (Popularity, RiverLogisticRegression, UserGenreItemRatesPerEvent, UserItemRates,
                                 UserItemRatesPerEvent)

    overrides = {  # MovieLens users rate dozens of films a minute: that is not a bot there
        "FRESHREC_MODEL": args.model, "FRESHREC_BOT_EVENTS_PER_MINUTE": "1000000",
        "FRESHREC_MAX_TRAIN_SECONDS": str(args.max_train_seconds), "FRESHREC_EPOCHS": "1",
        "FRESHREC_MAX_TRAIN_STEPS": "1000000"}
    os.environ.update(overrides)
    settings = load_settings()
    engine, _ = scratch_database("freshrec_eval")
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
    stream = Stream(engine, settings)
    baselines = [Popularity(), UserItemRates(), UserItemRatesPerEvent(), UserGenreItemRatesPerEvent(),
                 RiverLogisticRegression()]

    started = time.perf_counter()
    history = stream.ingest_only(warmup - args.warmup_train_rows)
    for b in baselines:
        b.warm(with_genres(engine, history))
    outcome, summary = stream.cycle(args.warmup_train_rows)  # cold start: the first champion
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

    retrained = None
    cycles_out = []
    pooled: dict[str, list] = {c: [] for c in CONTENDERS}
    for k in range(args.score_cycles):
        row: dict = {"cycle": k + 1, "contenders": {}}
        t0 = time.perf_counter()
        outcome, summary = stream.cycle(args.cycle_rows)
        freshrec_s = time.perf_counter() - t0
        ex = outcome.examples
        if "champion_score" not in ex:
            raise SystemExit("freshrec had no champion to score with")
        scores, seconds = {"freshrec": ex["champion_score"].to_numpy()}, {"freshrec": freshrec_s}
        t0 = time.perf_counter()
        scores["frozen"] = predict(frozen, tokenizer, frozen_cfg, ex, device)
        seconds["frozen"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if k % args.retrain_every == 0:
            retrained = retrain_from_base(engine, settings, history, args.retrain_rows, seed=k)
        scores["full retrain"] = predict(retrained[0], tokenizer, retrained[1], ex, device)
        seconds["full retrain"] = time.perf_counter() - t0
        rows = with_genres(engine, ex)
        for b in baselines:
            t0 = time.perf_counter()
            scores[b.name] = b.score(rows)
            b.learn(rows)
            seconds[b.name] = time.perf_counter() - t0
        history = pd.concat([history, ex[["id", "user_id", "item_id", "event_type", "label", "dwell_ms",
                                          "occurred_at"]]], ignore_index=True)
        for name in CONTENDERS:
            m = evaluate(ex["user_id"], ex["label"], scores[name], settings.min_eval_rows)
            row["contenders"][name] = {"auc": m["auc"], "logloss": m["logloss"], "ndcg_at_10": m["ndcg_at_10"],
                                       "n": m["n"], "seconds": round(seconds[name], 2)}
            pooled[name].append((ex["label"].to_numpy(), scores[name], ex["user_id"].to_numpy()))
        row["freshrec_published"] = summary.decision.get("published")
        row["drift"] = (summary.drift or {}).get("drifted_share")
        row["peak_rss_mb"] = rss_mb()
        cycles_out.append(row)
        print(f"cycle {k + 1}/{args.score_cycles}: " + ", ".join(
            f"{n} {row['contenders'][n]['auc']:.3f}" for n in CONTENDERS), file=sys.stderr)

    totals = {}
    for name in CONTENDERS:
        y = np.concatenate([p[0] for p in pooled[name]])
        s = np.concatenate([p[1] for p in pooled[name]])
        u = np.concatenate([p[2] for p in pooled[name]])
        m = evaluate(u, y, s)
        totals[name] = {"auc": m["auc"], "logloss": m["logloss"], "ndcg_at_10": m["ndcg_at_10"], "n": m["n"],
                        "seconds_per_cycle": round(np.mean([c["contenders"][name]["seconds"] for c in cycles_out]),
                                                   2)}
    comparisons = {f"freshrec - {other}": paired_auc_difference(pooled["freshrec"], pooled[other])
                   for other in ("frozen", "user+item rates (per event)", "user-in-genre+item rates (per event)",
                                 "full retrain")}
    result = {"stream": stream_name, "model": args.model, "cycle_rows": args.cycle_rows,
              "scored": f"the last {args.score_cycles * args.cycle_rows} of {total} events "
                        f"({args.score_cycles} cycles) after {warmup} warm-up events",
              "totals": totals, "comparisons": comparisons, "cycles": cycles_out,
              "wall_s": round(time.perf_counter() - started), "peak_rss_mb": rss_mb()}
    if drift_cycle is not None:
        result["recovery_cycles"] = recovery(cycles_out, drift_cycle)
    return result


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

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    lines = [f"Stream: {result['stream']}; model {result['model']}; scored {result['scored']}.", "",
             "| contender | AUC | log loss | NDCG@10 | seconds per cycle |", "|---|---|---|---|---|"]
    for name, t in sorted(result["totals"].items(), key=lambda kv: -(kv[1]["auc"] or 0)):
        lines.append(f"| {name} | {t['auc']:.4f} | {t['logloss']:.4f} | "
                     f"{t['ndcg_at_10'] if t['ndcg_at_10'] is None else round(t['ndcg_at_10'], 4)} | "
                     f"{t['seconds_per_cycle']} |")
    lines += ["", "| comparison (same events) | AUC difference | 95% interval (bootstrap over users) |",
              "|---|---|---|"]
    lines += [f"| {name} | {c['auc_difference']:+.4f} | {c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f} |"
              for name, c in result.get("comparisons", {}).items()]
    if "recovery_cycles" in result:
        lines += ["", "| contender | AUC before the drift | cycles to recover (within 0.02) |", "|---|---|---|"]
        lines += [f"| {n} | {r['pre_drift_auc'] if r['pre_drift_auc'] is None else round(r['pre_drift_auc'], 3)} | "
                  f"{'not within the run' if r['cycles_to_recover'] is None else r['cycles_to_recover']} |"
                  for n, r in result["recovery_cycles"].items()]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name in CONTENDERS:
        ax.plot([c["cycle"] for c in result["cycles"]], [c["contenders"][name]["auc"] for c in result["cycles"]],
                marker="o", markersize=3, label=name, linewidth=2.2 if name == "freshrec" else 1.2)
    ax.set_xlabel(f"scored cycle ({result['cycle_rows']} interactions each)")
    ax.set_ylabel("AUC (scored before training)")
    ax.set_title(f"Prequential AUC: {result['stream']}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "prequential_auc.png", dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--movielens", help="folder of ml-latest-small")
    source.add_argument("--synthetic", action="store_true")
    parser.add_argument("--synthetic-events", type=int, default=12_000)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--cycle-rows", type=int, default=1000)
    parser.add_argument("--score-cycles", type=int, default=10)
    parser.add_argument("--warmup-train-rows", type=int, default=3000)
    parser.add_argument("--retrain-every", type=int, default=5)
    parser.add_argument("--retrain-rows", type=int, default=3000)
    parser.add_argument("--max-train-seconds", type=float, default=60)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    result = run(args)
    out = args.out / ("movielens" if args.movielens else "synthetic")
    write_outputs(result, out)
    print((out / "results.md").read_text())
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
