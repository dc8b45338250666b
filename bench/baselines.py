"""The simple contenders of the evaluation: each scores a cycle's rows first, then learns from them.

Rows are frames with user_id, item_id, label and genres (a list of strings per row).
"""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np
import pandas as pd


def logit(p):
    p = np.clip(np.asarray(p, dtype=float), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class LikeRates:
    """Smoothed like-rates of items (and users) seen so far."""

    def __init__(self, prior_weight: float = 10.0):
        self.w = prior_weight
        self.n_user, self.pos_user = defaultdict(int), defaultdict(int)
        self.n_item, self.pos_item = defaultdict(int), defaultdict(int)
        self.n, self.pos = 0, 0
        from freshrec.features import RECENT_EVENTS

        self.latest = defaultdict(lambda: deque(maxlen=RECENT_EVENTS))  # per user: their last labels, in order
        # per user: how many items they met and the sum of those items' rates at the time (features.item_quality)
        self.met_n, self.met_total = defaultdict(int), defaultdict(float)

    def prior(self) -> float:
        return (self.pos + 1) / (self.n + 2)

    def item_rate(self, items) -> np.ndarray:
        from freshrec.features import shrunk_rate

        return shrunk_rate(np.array([self.pos_item[i] for i in items], float),
                           np.array([self.n_item[i] for i in items], float), self.prior(), self.w)

    def user_rate(self, users) -> np.ndarray:
        from freshrec.features import shrunk_rate

        return shrunk_rate(np.array([self.pos_user[u] for u in users], float),
                           np.array([self.n_user[u] for u in users], float), self.prior(), self.w)

    def recent_counts(self, users) -> tuple[np.ndarray, np.ndarray]:
        """Per user: how many of their last RECENT_EVENTS labels are known, and how many were positive."""
        return (np.array([len(self.latest[u]) for u in users], float),
                np.array([sum(self.latest[u]) for u in users], float))

    def inputs(self, rows: pd.DataFrame) -> pd.DataFrame:
        """freshrec's side features of the rows computed from these counts (features.side_features, shrunk towards
        0.5 unlike this contender's own rates): what build_examples gives a row whose strictly earlier events are
        the ones learned so far. Without genre counts the category rate is the overall user rate."""
        from freshrec.features import (CATEGORY_RATE, ITEM_QUALITY, RECENT_RATE, SESSION_EVENTS, SESSION_RATE,
                                       item_quality, recent_rate, side_features)

        users, items = rows["user_id"], rows["item_id"]
        out = pd.DataFrame(side_features([self.n_user[u] for u in users], [self.pos_user[u] for u in users],
                                         [self.n_item[i] for i in items], [self.pos_item[i] for i in items]))
        out[CATEGORY_RATE] = out["user_rate"]
        out[RECENT_RATE] = recent_rate(out["user_rate"], *self.recent_counts(users))
        latest = [list(self.latest[u])[-SESSION_EVENTS:] for u in users]
        out[SESSION_RATE] = recent_rate(out["user_rate"], [len(x) for x in latest], [sum(x) for x in latest])
        out[ITEM_QUALITY] = item_quality([self.met_total[u] for u in users], [self.met_n[u] for u in users])
        return out

    def warm(self, rows: pd.DataFrame) -> None:
        """Learn rows that are not scored (the warm-up)."""
        LikeRates.learn(self, rows)

    def learn(self, rows: pd.DataFrame) -> None:
        """Learn the rows in time order. Each row's item rate as freshrec logs it (item_rate_log, for the quality of
        the items a user met) counts the item's rows strictly before it: rows at the same instant do not see each
        other, as in freshrec's SQL."""
        from freshrec.features import RATE_PRIOR_WEIGHT as weight

        users, items, labels = (rows[c].to_numpy() for c in ("user_id", "item_id", "label"))
        times = rows["occurred_at"].to_numpy() if "occurred_at" in rows else np.zeros(len(rows))
        order = np.argsort(times, kind="stable")
        pending: list[tuple] = []  # this instant's rows: counted after their item rates are taken
        for k, row in enumerate(order):
            u, i, y = users[row], items[row], int(labels[row])
            self.met_n[u] += 1
            self.met_total[u] += (self.pos_item[i] + weight * 0.5) / (self.n_item[i] + weight)
            pending.append((u, i, y))
            if k + 1 == len(order) or times[order[k + 1]] != times[row]:
                for u, i, y in pending:
                    self.n_user[u] += 1
                    self.pos_user[u] += y
                    self.n_item[i] += 1
                    self.pos_item[i] += y
                    self.n += 1
                    self.pos += y
                    self.latest[u].append(y)
                pending.clear()


class Popularity(LikeRates):
    name = "popularity"

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        return self.item_rate(rows["item_id"])


class UserItemRates(LikeRates):
    """Combined in log-odds: user's lean plus item's lean over the base rate."""
    name = "user+item rates"

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        z = logit(self.user_rate(rows["user_id"])) + logit(self.item_rate(rows["item_id"])) - logit(self.prior())
        return 1 / (1 + np.exp(-z))


class UserItemRatesPerEvent(UserItemRates):
    """The same, updated after every event instead of every cycle: each row sees all rows strictly earlier
    in time, as freshrec's point-in-time side features do (rows at the same instant do not see each other)."""
    name = "user+item rates (per event)"

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """Scores in row order; also keeps last_inputs, each row's freshrec side features (inputs()) at its time."""
        out = np.empty(len(rows))
        inputs = None
        order = np.argsort(rows["occurred_at"].to_numpy(), kind="stable")
        times = rows["occurred_at"].to_numpy()[order]
        starts = np.r_[0, np.flatnonzero(times[1:] != times[:-1]) + 1, len(order)]
        for lo, hi in zip(starts[:-1], starts[1:]):
            group = rows.iloc[order[lo:hi]]
            seen = self.inputs(group)
            if inputs is None:
                inputs = pd.DataFrame(np.nan, index=np.arange(len(rows)), columns=seen.columns)
            inputs.iloc[order[lo:hi]] = seen.to_numpy()
            out[order[lo:hi]] = self.score_group(group)
            self.learn_group(group)
        self.last_inputs = inputs
        return out

    def score_group(self, rows: pd.DataFrame) -> np.ndarray:
        return UserItemRates.score(self, rows)

    def learn_group(self, rows: pd.DataFrame) -> None:
        LikeRates.learn(self, rows)

    def warm(self, rows: pd.DataFrame) -> None:
        self.learn_group(rows)

    def learn(self, rows: pd.DataFrame) -> None:
        """Nothing left: score() learned every row, in time order."""


class UserGenreItemRatesPerEvent(UserItemRatesPerEvent):
    """Per event, like the above, with the user's rate in the item's genres in place of their overall rate: per
    genre their earlier likes and ratings, shrunk towards their overall rate, averaged over the genres (what
    freshrec's FRESHREC_CATEGORY_RATE gives its model)."""
    name = "user-in-genre+item rates (per event)"

    def __init__(self, prior_weight: float = 10.0):
        super().__init__(prior_weight)
        self.n_genre, self.pos_genre = defaultdict(int), defaultdict(int)

    def user_genre_rate(self, users, genres) -> np.ndarray:
        from freshrec.features import category_rate

        return np.array([category_rate(r, [(self.n_genre[u, g], self.pos_genre[u, g]) for g in gs], self.w)
                         for u, gs, r in zip(users, genres, self.user_rate(users))])

    def inputs(self, rows: pd.DataFrame) -> pd.DataFrame:
        from freshrec.features import CATEGORY_RATE, category_rate

        out = super().inputs(rows)
        out[CATEGORY_RATE] = [category_rate(r, [(self.n_genre[u, g], self.pos_genre[u, g]) for g in gs])
                              for u, gs, r in zip(rows["user_id"], rows["genres"], out["user_rate"])]
        return out

    def score_group(self, rows: pd.DataFrame) -> np.ndarray:
        z = (logit(self.user_genre_rate(rows["user_id"], rows["genres"])) + logit(self.item_rate(rows["item_id"]))
             - logit(self.prior()))
        return 1 / (1 + np.exp(-z))

    def learn_group(self, rows: pd.DataFrame) -> None:
        LikeRates.learn(self, rows)
        for u, gs, y in zip(rows["user_id"], rows["genres"], rows["label"]):
            for g in gs:
                self.n_genre[u, g] += 1
                self.pos_genre[u, g] += int(y)


class UserGenreRecentItemRatesPerEvent(UserGenreItemRatesPerEvent):
    """Per event, the above plus the user's recent departure from their overall rate, added by hand with weight 1:
    logit(rate over their last RECENT_EVENTS ratings, shrunk towards the overall rate) - logit(overall rate). A
    fixed prior over all of freshrec's like-rate inputs; freshrec's models do not start from it: their wide part
    learns the weights of its inputs from every fresh row (wide.py)."""
    name = "user-in-genre+recent+item rates (per event)"

    def score_group(self, rows: pd.DataFrame) -> np.ndarray:
        from freshrec.features import recent_rate

        users = rows["user_id"]
        overall = self.user_rate(users)
        z = (logit(self.user_genre_rate(users, rows["genres"])) + logit(self.item_rate(rows["item_id"]))
             + logit(recent_rate(overall, *self.recent_counts(users), self.w)) - logit(overall)
             - logit(self.prior()))
        return 1 / (1 + np.exp(-z))


class RiverLogisticRegression:
    """Online logistic regression (river) over one-hot user, item, genre and user x genre features."""
    name = "river logreg"

    def __init__(self, lr: float = 0.05):
        from river import linear_model, optim

        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(lr))

    @staticmethod
    def features(user, item, genres) -> dict[str, float]:
        x = {f"u={user}": 1.0, f"i={item}": 1.0}
        for g in genres:
            x[f"g={g}"] = 1.0
            x[f"u={user}|g={g}"] = 1.0
        return x

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        return np.array([self.model.predict_proba_one(self.features(u, i, g)).get(True, 0.5)
                         for u, i, g in zip(rows["user_id"], rows["item_id"], rows["genres"])])

    def learn(self, rows: pd.DataFrame) -> None:
        for u, i, g, y in zip(rows["user_id"], rows["item_id"], rows["genres"], rows["label"]):
            self.model.learn_one(self.features(u, i, g), bool(y))

    warm = learn
