"""Why did fine-tuning not beat the frozen model on MovieLens? A fast sweep of the update recipe.

    python -m bench.replay_sweep --movielens ../shared/data/ml-latest-small [--id-buckets 0 32768] [--replay 2 4]
        [--holdout newest users] [--score-cycles 90 --replay-pool 7836]   (the last: the whole stream)

The full evaluation (bench.evaluate) fine-tunes MiniLM with LoRA every cycle: over an hour per configuration on
2 cores. This sweep keeps the encoder frozen, encodes every user and item text once (same texts, same
point-in-time like-rates as freshrec.features, computed with pandas), and then replays freshrec's update
recipe on freshrec's own scoring head (CtrModel.score_pairs) and its own publish rule (gate.decide):
cold start on the warm-up rows, then per cycle of --cycle-rows: score (test), hold out 20% with freshrec's own
split (features.split_holdout, mode --holdout), train a warm-started candidate on the previous held-out rows +
the rest of the cycle + `replay x` rows drawn uniformly from all older rows, publish if the rule passes.
MovieLens cycles flag drift almost every time, so the rule runs in its drift mode (the candidate must beat the
champion on AUC and log loss).

Prints pooled prequential AUC and NDCG@10 of the per-event like-rate prior (the untrained head), the frozen
first champion and the updated champion for each item-id table size (0: no id term), holdout mode, replay
ratio and seed, with 95% intervals of freshrec's AUC difference (bootstrap over users); well under a minute
per configuration of 10 cycles after a one-off ~10 minute encoding pass.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from freshrec.features import (HOLDOUT_MODES, RECENT_EVENTS, RECENT_RATE, SIDE_COLUMNS, item_text, recent_rate,
                               shrunk_rate, side_features, split_holdout, user_text)
from freshrec.movielens import POSITIVE_RATING, movie_items, read_movielens


def user_genre_rates(ratings: pd.DataFrame, genres: pd.Series) -> np.ndarray:
    """Per rating: the user's like-rate in each of the movie's genres before it, shrunk towards their overall
    rate (`user_rate`) with freshrec's prior weight, averaged over the genres."""
    by_genre = ratings[["userId", "timestamp", "label"]].assign(row=np.arange(len(ratings)),
                                                                 genre=ratings["movieId"].map(genres).to_numpy())
    by_genre = by_genre.explode("genre")
    genre_n, genre_pos = counts_before(by_genre, ["userId", "genre"])
    by_genre["rate"] = shrunk_rate(genre_pos, genre_n, ratings["user_rate"].to_numpy()[by_genre["row"].to_numpy()])
    return by_genre.groupby("row")["rate"].mean().to_numpy()


def recent_counts_before(frame: pd.DataFrame, events: int) -> tuple[np.ndarray, np.ndarray]:
    """Per rating of a time-ordered frame: how many of the user's last `events` ratings strictly before its time
    (ties in time in row order, as freshrec's SQL breaks them by id) there are, and how many were positive."""
    n, pos = np.zeros(len(frame)), np.zeros(len(frame))
    times, labels = frame["timestamp"].to_numpy(), frame["label"].to_numpy()
    for rows in frame.groupby("userId").indices.values():
        earlier = np.searchsorted(times[rows], times[rows], side="left")  # the user's ratings strictly before
        cumulative = np.r_[0, np.cumsum(labels[rows])]
        first = np.maximum(0, earlier - events)
        n[rows], pos[rows] = earlier - first, cumulative[earlier] - cumulative[first]
    return n, pos


def counts_before(frame: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Earlier events and earlier positives per key, for each row of a time-ordered frame: cumulative counts
    minus those of the same key in the same second ("strictly earlier", as in freshrec's SQL)."""
    by_key, by_second = frame.groupby(keys), frame.groupby([*keys, "timestamp"])
    n = by_key.cumcount().to_numpy() - by_second.cumcount().to_numpy()
    pos = (by_key["label"].cumsum() - frame["label"]).to_numpy() - \
          (by_second["label"].cumsum() - frame["label"]).to_numpy()
    return n, pos


def movielens_stream(folder: Path, history_len: int) -> pd.DataFrame:
    """Ratings in time order with freshrec's model inputs, each strictly from earlier timestamps."""
    movies, ratings = read_movielens(folder)  # the same checks and time order as the evaluation's load
    ratings["label"] = (ratings["rating"] >= POSITIVE_RATING).astype(int)

    user_n, user_pos = counts_before(ratings, ["userId"])
    item_n, item_pos = counts_before(ratings, ["movieId"])
    for column, values in side_features(user_n, user_pos, item_n, item_pos).items():
        ratings[column] = values
    ratings["user_genre_rate"] = user_genre_rates(ratings, movies.set_index("movieId")["genres"].astype(str)
                                                  .str.split("|"))
    ratings[RECENT_RATE] = recent_rate(ratings["user_rate"], *recent_counts_before(ratings, RECENT_EVENTS))
    catalogue = movie_items(movies)
    texts = {i: item_text(t, c, d) for i, t, c, d in zip(catalogue["ids"], catalogue["titles"],
                                                         catalogue["categories"], catalogue["descriptions"])}
    titles = dict(zip(catalogue["ids"], catalogue["titles"]))
    ratings["item_text"] = ratings["movieId"].map(texts)
    liked: dict[int, list[tuple[int, int]]] = {}
    users, histories = [], []
    for u, i, label, ts in zip(ratings["userId"], ratings["movieId"], ratings["label"], ratings["timestamp"]):
        history = liked.setdefault(u, [])
        recent = [item for item, when in reversed(history) if when < ts][:history_len]
        users.append(user_text([titles[item] for item in recent]))
        histories.append(recent)
        if label == 1:
            history.append((i, ts))
            del history[:-4 * history_len]
    ratings["user_text"] = users
    ratings["history_item_ids"] = histories
    return ratings


def run(args) -> list[dict]:
    import torch

    from bench.evaluate import paired_auc_difference
    from freshrec.drift import DriftResult
    from freshrec.metrics import evaluate
    from freshrec.model import build_model, id_inputs, load_tokenizer, new_model_config
    from freshrec.gate import PublishPolicy, decide
    from freshrec.settings import GateSettings
    from freshrec.inference import embed_texts
    from freshrec.trainer import param_groups

    stream = movielens_stream(Path(args.movielens), args.history_len)
    window = stream.iloc[-(args.warmup_rows + args.score_cycles * args.cycle_rows + args.replay_pool):]
    window = window.reset_index(drop=True)

    def model_config(id_buckets: int):
        return new_model_config(args.model, "lora", max_item_tokens=48, max_user_tokens=96,
                                history_len=args.history_len, seed=0, id_buckets=id_buckets)

    tokenizer = load_tokenizer(args.model)
    encoder_only = build_model(model_config(0)).eval()
    print(f"encoding {window['user_text'].nunique()} user and {window['item_text'].nunique()} item texts...",
          file=sys.stderr)
    cpu = torch.device("cpu")
    users = torch.as_tensor(embed_texts(encoder_only, tokenizer, window["user_text"].tolist(), 96, cpu))
    items = torch.as_tensor(embed_texts(encoder_only, tokenizer, window["item_text"].tolist(), 48, cpu))
    sides = {"overall": torch.as_tensor(window[SIDE_COLUMNS].to_numpy(np.float32)),
             # the same head, its user-rate input replaced by the genre-aware one: the wide part then starts as
             # logit(user's rate in the item's genres) + logit(item rate)
             "genre": torch.as_tensor(window[["user_genre_rate", *SIDE_COLUMNS[1:]]].to_numpy(np.float32))}
    labels = torch.as_tensor(window["label"].to_numpy(np.float32))
    drifted = DriftResult(status="measured", dataset_drift=True)
    policy = PublishPolicy.from_settings(GateSettings())

    def logits(model, rows):  # the head alone, on the precomputed text embeddings
        ids = model.sweep_ids
        return model.score_pairs(users[rows], items[rows], side[rows],
                                 None if ids is None else (ids[0][rows], ids[1][rows]))

    def fit(model, rows, seed):
        # freshrec's optimizer setup (the id table's own rate); the encoder is frozen here, so it gets no grads
        optimizer = torch.optim.AdamW(param_groups(model, args.lr))
        params = [p for group in optimizer.param_groups for p in group["params"]]
        order = np.random.default_rng(seed).permutation(rows)
        for lo in range(0, len(order), 32):  # one epoch, batch 32, as bench.evaluate runs freshrec
            batch = order[lo:lo + 32]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(model, batch), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()

    def scores(model, rows):
        with torch.no_grad():
            return torch.sigmoid(logits(model, rows)).numpy()

    first_scored = len(window) - args.score_cycles * args.cycle_rows
    cold = np.arange(first_scored - args.warmup_rows, first_scored)
    y = window["label"].to_numpy()[first_scored:]
    u = window["userId"].to_numpy()[first_scored:]
    results = []

    def held_out(rows, mode, seed):  # freshrec's own split of a batch, on the sweep's row numbers
        batch = pd.DataFrame({"id": rows, "user_id": window["userId"].to_numpy()[rows],
                              "occurred_at": window["timestamp"].to_numpy()[rows]})
        train_part, held = split_holdout(batch, args.holdout_share, mode, seed)
        return train_part["id"].to_numpy(), held["id"].to_numpy()

    for user_rate, id_buckets, holdout, replay, seed in itertools.product(args.user_rate, args.id_buckets,
                                                                          args.holdout, args.replay, args.seeds):
        side = sides[user_rate]
        config = model_config(id_buckets)
        base = build_model(config).eval()
        base.sweep_ids = id_inputs(config, window["movieId"].to_numpy(), window["history_item_ids"].tolist())
        torch.manual_seed(seed)
        champion = copy.deepcopy(base)
        n_train = int(len(cold) * 0.8)
        fit(champion, cold[:n_train], seed)
        frozen, backlog = copy.deepcopy(champion), cold[n_train:]
        pooled = {"like-rates": [], "frozen": [], "freshrec": []}
        published = []
        for k in range(args.score_cycles):
            rows = np.arange(first_scored + k * args.cycle_rows, first_scored + (k + 1) * args.cycle_rows)
            champion_scores = scores(champion, rows)
            pooled["frozen"].append(scores(frozen, rows))
            with torch.no_grad():  # the untrained wide part alone: the per-event like-rate prior
                prior = base.wide(base.side_inputs(side[rows])).squeeze(-1)
            pooled["like-rates"].append(torch.sigmoid(prior).numpy())
            pooled["freshrec"].append(champion_scores)
            trained, held = held_out(rows, holdout, 1000 * seed + k)
            fresh = np.concatenate([backlog, trained])
            rng = np.random.default_rng(1000 * seed + k)
            n_older = rows[0]  # rows before this cycle in the window: the replay pool
            older = rng.choice(n_older, min(n_older, int(len(fresh) * replay)), replace=False)
            candidate = copy.deepcopy(champion)
            fit(candidate, np.concatenate([fresh, older]), 1000 * seed + k)
            metrics = {"candidate": evaluate(window["userId"].iloc[held], labels[held].numpy(),
                                             scores(candidate, held)),
                       "champion": evaluate(window["userId"].iloc[held], labels[held].numpy(),
                                            champion_scores[held - rows[0]])}
            verdict = decide(batch_accepted=True, reject_reason=None, trained=True, skip_reason=None,
                             metrics=metrics, has_champion=True, drift=drifted, policy=policy)
            if verdict.publish:
                champion = candidate
            published.append(int(verdict.publish))
            backlog = held
        row = {"user_rate": user_rate, "id_buckets": id_buckets, "holdout": holdout, "replay": replay, "seed": seed,
               "published": "".join(map(str, published))}
        for name, parts in pooled.items():
            m = evaluate(u, y, np.concatenate(parts))
            row[f"{name}_auc"], row[f"{name}_ndcg"] = round(m["auc"], 4), round(m["ndcg_at_10"], 4)
        row["auc_difference"] = round(row["freshrec_auc"] - row["frozen_auc"], 4)
        row["ndcg_difference"] = round(row["freshrec_ndcg"] - row["frozen_ndcg"], 4)
        for other in ("frozen", "like-rates") if args.resamples else ():
            paired = paired_auc_difference([(y, np.concatenate(pooled["freshrec"]), u)],
                                           [(y, np.concatenate(pooled[other]), u)], args.resamples, seed)
            row[f"ci95_vs_{other}"] = "{:+.4f}..{:+.4f}".format(*paired["ci95"])
        print(row, file=sys.stderr)
        results.append(row)
    return results


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", required=True, help="folder of ml-latest-small")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--replay", type=float, nargs="+", default=[2.0])
    parser.add_argument("--id-buckets", type=int, nargs="+", default=[0, 32_768],
                        help="item-id table sizes to compare (0: text and like-rates only)")
    parser.add_argument("--holdout", nargs="+", default=["newest"], choices=HOLDOUT_MODES,
                        help="how the publish gate's held-out rows are chosen (freshrec.features.split_holdout)")
    parser.add_argument("--user-rate", nargs="+", default=["overall"], choices=["overall", "genre"],
                        help="the head's user like-rate input: overall, or in the item's genres (shrunk to overall)")
    parser.add_argument("--holdout-share", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cycle-rows", type=int, default=1000)
    parser.add_argument("--score-cycles", type=int, default=10)
    parser.add_argument("--warmup-rows", type=int, default=3000)
    parser.add_argument("--replay-pool", type=int, default=27_000, help="older rows replay may draw from")
    parser.add_argument("--history-len", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--resamples", type=int, default=200,
                        help="bootstrap resamples over users for the 95%% intervals of freshrec's AUC difference "
                        "(0: none)")
    args = parser.parse_args(argv)
    results = run(args)
    table = pd.DataFrame(results)
    columns = ["like-rates_auc", "frozen_auc", "freshrec_auc", "auc_difference", "frozen_ndcg", "freshrec_ndcg",
               "ndcg_difference"]
    summary = table.groupby(["user_rate", "id_buckets", "holdout", "replay"])[columns].mean().round(4)
    print(table.to_string(index=False))
    print("\nmean over seeds:\n" + summary.to_string())
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
