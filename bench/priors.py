"""How far do point-in-time like-rates alone go on MovieLens? No model, a few seconds.

    python -m bench.priors --movielens ../shared/data/ml-latest-small [--last 10000] [--warmup 10836]

Every MovieLens ranking here is dominated by who the user is and how liked the film is; the text models sit within
0.003 AUC of the like-rate prior (see docs/evaluation.md). This scores, on the same events and with the same
metric code, the priors a model could start from, each computed strictly from earlier ratings:

  item rate                   the film's smoothed like-rate (the popularity contender)
  user + item rates           logit(user rate) + logit(item rate): freshrec's side features, untrained
  user-in-genre + item rates  the user's rate in each of the film's genres, shrunk to their overall rate
  user-in-first-genre + item  the same with the first genre only (what freshrec's items.category holds)
  user-in-genre + recent + item  plus the user's recent departure from their overall rate, by hand (weight 1):
                              logit(rate over their last 10 ratings, shrunk to the overall) - logit(overall)
  fitted: ... inputs          a logistic regression (scikit-learn) on the same inputs as freshrec's wide part reads
                              them (logits of the rates, log counts / 4), refitted every --refit ratings on all
                              earlier ones and scored on the next (test-then-train): how far a learned combination
                              of the inputs goes beyond the hand-set sums; freshrec's wide part (wide.py) learns
                              such a combination online, every fresh row once

Prints AUC and NDCG@10 for the last --last ratings and for everything after --warmup ratings, with a 95%
interval (bootstrap over users) of each prior's AUC difference to user + item rates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def priors(folder: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The ratings in time order with their labels, each prior's P(like) per rating, and the input matrices of
    the fitted priors."""
    from bench.baselines import logit
    from bench.replay_sweep import counts_before, recent_counts_before, user_genre_rates
    from freshrec.features import RECENT_EVENTS, recent_rate, side_features
    from freshrec.movielens import POSITIVE_RATING, read_movielens

    movies, ratings = read_movielens(folder)
    ratings["label"] = (ratings["rating"] >= POSITIVE_RATING).astype(int)
    features = side_features(*counts_before(ratings, ["userId"]), *counts_before(ratings, ["movieId"]))
    ratings["user_rate"] = features["user_rate"]
    genres = movies.set_index("movieId")["genres"].astype(str).str.split("|")
    genre_rate = user_genre_rates(ratings, genres)

    item = logit(features["item_rate"])
    log_odds = {
        "item rate": item,
        "user + item rates": logit(features["user_rate"]) + item,
        "user-in-genre + item rates": logit(genre_rate) + item,
        "user-in-first-genre + item rates": logit(user_genre_rates(ratings, genres.str[:1])) + item,
    }
    recent = recent_rate(features["user_rate"], *recent_counts_before(ratings, RECENT_EVENTS))
    log_odds["user-in-genre + recent + item rates"] = (log_odds["user-in-genre + item rates"] + logit(recent)
                                                       - logit(features["user_rate"]))
    counts = np.c_[features["user_log_n"], features["item_log_n"]] / 4.0
    inputs = {"genre": np.c_[logit(genre_rate), item, counts]}
    inputs["genre + recent"] = np.c_[inputs["genre"], logit(features["user_rate"]), logit(recent)]
    return ratings, {name: 1 / (1 + np.exp(-z)) for name, z in log_odds.items()}, inputs


def fitted(inputs: np.ndarray, labels: np.ndarray, start: int, refit: int) -> np.ndarray:
    """P(like) from a logistic regression refitted every `refit` ratings on all ratings before; NaN before start."""
    from sklearn.linear_model import LogisticRegression

    out = np.full(len(labels), np.nan)
    for lo in range(start, len(labels), refit):
        model = LogisticRegression(max_iter=1000).fit(inputs[:lo], labels[:lo])
        out[lo:lo + refit] = model.predict_proba(inputs[lo:lo + refit])[:, 1]
    return out


def run(args) -> list[dict]:
    from bench.evaluate import paired_auc_difference
    from freshrec.metrics import evaluate

    ratings, scores, inputs = priors(Path(args.movielens))
    y, users = ratings["label"].to_numpy(), ratings["userId"].to_numpy()
    first = min(args.warmup, len(ratings) - args.last)
    for name, x in inputs.items():
        scores[f"fitted: {name} inputs"] = fitted(x, y, first, args.refit)
    out = []
    for part, start in ((f"last {args.last}", len(ratings) - args.last), (f"after {args.warmup}", args.warmup)):
        s = slice(start, None)
        base = [(y[s], scores["user + item rates"][s], users[s])]
        for name, score in scores.items():
            m = evaluate(users[s], y[s], score[s])
            row = {"scored": part, "users": len(np.unique(users[s])), "prior": name, "auc": round(m["auc"], 4),
                   "ndcg_at_10": round(m["ndcg_at_10"], 4)}
            if name != "user + item rates":
                paired = paired_auc_difference([(y[s], score[s], users[s])], base, args.resamples)
                row["auc_vs_user_item"] = paired["auc_difference"]
                row["ci95"] = "{:+.4f}..{:+.4f}".format(*paired["ci95"])
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", required=True, help="folder of ml-latest-small")
    parser.add_argument("--last", type=int, default=10_000, help="the evaluation's scored part (its last cycles)")
    parser.add_argument("--warmup", type=int, default=10_836, help="the whole-stream sweep's first scored rating")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--refit", type=int, default=5_000, help="ratings between refits of the fitted priors")
    rows = run(parser.parse_args(argv))
    print(pd.DataFrame(rows).fillna("").to_string(index=False))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
