"""Turn clean interaction rows into model examples: item text, user text, label, and drift features."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.sqlfiles import query

NO_HISTORY = "new user with no liked items yet"
SIDE_COLUMNS = ["user_rate", "item_rate", "user_log_n", "item_log_n"]
CATEGORY_RATE = "user_category_rate"  # the user's like-rate in the item's categories (features.category_rate)
RECENT_RATE = "user_recent_rate"  # the user's like-rate over their last RECENT_EVENTS interactions (recent_rate)
RECENT_EVENTS = 10
SESSION_RATE = "user_session_rate"  # the user's like-rate over their last SESSION_EVENTS interactions
SESSION_EVENTS = 3
ITEM_QUALITY = "user_item_quality"  # how well liked the user's earlier items were when they met them (item_quality)
RATE_PRIOR_WEIGHT = 10.0  # pseudo-events at a neutral 0.5, so a user with one like is not a sure thing


def item_text(title: str, category: str, description: str) -> str:
    parts = [title]
    if category and category not in (description or ""):
        parts.append(category)
    if description:
        parts.append(description)
    return " | ".join(p for p in parts if p)


def user_text(titles: list[str]) -> str:
    return "liked: " + "; ".join(titles) if titles else NO_HISTORY


def fetch_items(engine: Engine, item_ids: list[int]) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(query("items_by_id"), {"ids": item_ids}).all()
    return pd.DataFrame(rows, columns=["id", "title", "description", "category"]).set_index("id")


def fetch_histories(engine: Engine, frame: pd.DataFrame, history_len: int,
                    exclude_ids: list[int] = ()) -> dict[int, tuple[list[str], list[int]]]:
    """Per row id: the titles and ids of the user's most recent liked items before the row's time."""
    if history_len <= 0 or frame.empty:
        return {}
    params = {
        "row_ids": frame["id"].astype("int64").tolist(),
        "user_ids": frame["user_id"].astype("int64").tolist(),
        "times": [t.to_pydatetime() for t in frame["occurred_at"]],
        "history_len": history_len,
        "exclude_ids": list(exclude_ids),
    }
    with engine.connect() as conn:
        return {int(r.row_id): (list(r.titles), [int(i) for i in r.item_ids])
                for r in conn.execute(query("user_histories"), params)}


ACTIVITY_WINDOW = pd.Timedelta(days=7)


def relative_activity(engine: Engine, query_name: str, ids: list[int], until: pd.Timestamp,
                      exclude_ids: list[int] = ()) -> dict[int, float]:
    """Per id (item or user): log2 of its interactions over the week before `until`, relative to the median id
    of the same batch (both + 1). Raw counts grow while a history fills and with traffic, so every cycle would
    look drifted; relative to the window the value only moves when the batch's mix of popular and niche items
    (or heavy and light users) changes. Comparable across batch sizes and traffic levels."""
    with engine.connect() as conn:
        rows = conn.execute(query(query_name), {"ids": ids, "since": (until - ACTIVITY_WINDOW).to_pydatetime(),
                                                "until": until.to_pydatetime(),
                                                "exclude_ids": list(exclude_ids)}).all()
    counts = pd.Series({int(r.key): int(r.n) for r in rows}, dtype="float64").reindex(ids).fillna(0) + 1
    return dict(zip(ids, np.log2(counts / counts.median()).round(3))) if len(counts) else {}


def shrunk_rate(pos, n, toward, weight: float = RATE_PRIOR_WEIGHT):
    """A like-rate shrunk towards `toward` by `weight` pseudo-events (scalars or arrays)."""
    return (pos + weight * toward) / (n + weight)


def side_features(n_user, pos_user, n_item, pos_item) -> dict[str, np.ndarray]:
    """Smoothed like-rates and log counts of the user and the item: the model's learned-signal inputs."""
    n_user, pos_user = np.asarray(n_user, float), np.asarray(pos_user, float)
    n_item, pos_item = np.asarray(n_item, float), np.asarray(pos_item, float)
    return {"user_rate": shrunk_rate(pos_user, n_user, 0.5), "item_rate": shrunk_rate(pos_item, n_item, 0.5),
            "user_log_n": np.log1p(n_user), "item_log_n": np.log1p(n_item)}


def item_categories(category: str | None) -> list[str]:
    """An item's categories: items.category split at commas (as user_category_counts.sql splits it)."""
    return [c for c in re.split(r"\s*,\s*", (category or "").strip()) if c]


def category_rate(user_rate: float, counts: list[tuple[int, int]],
                  weight: float = RATE_PRIOR_WEIGHT) -> float:
    """The user's like-rate in an item's categories: per category (interactions, positives) shrunk towards their
    overall rate, averaged over the categories; the overall rate for an item without categories."""
    if not counts:
        return user_rate
    return sum(shrunk_rate(pos, n, user_rate, weight) for n, pos in counts) / len(counts)


def recent_rate(user_rate, n, pos, weight: float = RATE_PRIOR_WEIGHT):
    """The user's like-rate over their last RECENT_EVENTS interactions (`n` of them, `pos` positive), shrunk
    towards their overall rate: a user with no history yet has no recent departure from it."""
    return shrunk_rate(np.asarray(pos, float), np.asarray(n, float), np.asarray(user_rate, float), weight)


def item_quality(total, n, weight: float = RATE_PRIOR_WEIGHT):
    """The mean like-rate of the items a user met, each at the time they met it (`n` of them, summing to
    `total`), shrunk towards 0.5 like the rates themselves. Beside the user's own like-rate it separates a user
    who likes what everyone likes from one who is generous with everything: their rates can be equal."""
    return shrunk_rate(np.asarray(total, float), np.asarray(n, float), 0.5, weight)


def fill_item_rate_log(engine: Engine, user_ids: list[int], until, exclude_ids: list[int] = ()) -> None:
    """Log the item rate at its own time of every clean interaction of these users before `until` that has none
    yet (item_rate_log_fill.sql): what item_quality sums. Committed at once: derived data, the same whoever writes
    it first."""
    with engine.begin() as conn:
        conn.execute(query("item_rate_log_fill"), {"user_ids": sorted(set(user_ids)), "until": until,
                                                   "exclude_ids": list(exclude_ids), "weight": RATE_PRIOR_WEIGHT})


def point_in_time_rates(engine: Engine, frame: pd.DataFrame, categories: bool = True,
                        exclude_ids: list[int] = (), recent: bool = False, quality: bool = False,
                        session: bool = False) -> pd.DataFrame:
    """Per row: the user's and the item's interactions before the row's time (never its own label), the
    user's rate in the item's categories (CATEGORY_RATE; without `categories` their overall rate, unqueried),
    their rate over their last RECENT_EVENTS interactions (RECENT_RATE; without `recent` their overall rate), over
    their last SESSION_EVENTS (SESSION_RATE, the mood of the moment; without `session` their overall rate), and
    the quality of the items they met before (ITEM_QUALITY, item_quality; without `quality` 0.5, unqueried)."""
    if quality and len(frame):
        fill_item_rate_log(engine, frame["user_id"].astype("int64").tolist(),
                           max(t.to_pydatetime() for t in frame["occurred_at"]), exclude_ids)
    params = {"row_ids": frame["id"].astype("int64").tolist(), "user_ids": frame["user_id"].astype("int64").tolist(),
              "item_ids": frame["item_id"].astype("int64").tolist(),
              "times": [t.to_pydatetime() for t in frame["occurred_at"]], "exclude_ids": list(exclude_ids)}
    with engine.connect() as conn:
        rows = conn.execute(query("point_in_time_counts"), params).all()
        by_category: dict[int, list[tuple[int, int]]] = {}
        for r in conn.execute(query("user_category_counts"), params) if categories else ():
            by_category.setdefault(int(r.row_id), []).append((int(r.n), int(r.pos)))
        latest = (conn.execute(query("user_recent_counts"), {**params, "recent_events": RECENT_EVENTS,
                                                             "session_events": SESSION_EVENTS}).all()
                  if recent or session else [])
        met = (conn.execute(query("user_item_quality"), {**params, "weight": RATE_PRIOR_WEIGHT}).all()
               if quality else [])
    counts = pd.DataFrame(rows, columns=["id", "user_n", "user_pos", "item_n", "item_pos"]).set_index("id")
    counts = counts.reindex(frame["id"].astype("int64").to_numpy()).fillna(0)
    out = pd.DataFrame(side_features(counts["user_n"], counts["user_pos"], counts["item_n"], counts["item_pos"]))
    out[CATEGORY_RATE] = ([category_rate(rate, by_category.get(int(i), []))
                           for i, rate in zip(counts.index, out["user_rate"])] if categories else out["user_rate"])
    latest = (pd.DataFrame(latest, columns=["id", "n", "pos", "session_n", "session_pos"]).set_index("id")
              .reindex(counts.index).fillna(0))
    out[RECENT_RATE] = (recent_rate(out["user_rate"], latest["n"], latest["pos"]) if recent
                        else out["user_rate"])
    out[SESSION_RATE] = (recent_rate(out["user_rate"], latest["session_n"], latest["session_pos"]) if session
                         else out["user_rate"])
    met = pd.DataFrame(met, columns=["id", "n", "total"]).set_index("id").reindex(counts.index).fillna(0)
    out[ITEM_QUALITY] = item_quality(met["total"].to_numpy(), met["n"].to_numpy())
    return out


def side_columns(config) -> list[str]:
    """The columns a model version reads beside the text, in its input order: with `category_rate` the user's
    rate in the item's categories takes the place of their overall rate; with `recent_rate` their overall rate
    and their recent rate follow (weighed by the wide part's posterior, wide.py); with `item_quality` then the
    quality of the items they met (item_quality); with `session_rate` then their rate over their last
    SESSION_EVENTS interactions."""
    first = [CATEGORY_RATE, *SIDE_COLUMNS[1:]] if config.category_rate else list(SIDE_COLUMNS)
    recent = ["user_rate", RECENT_RATE] if getattr(config, "recent_rate", False) else []
    return [*first, *recent, *([ITEM_QUALITY] if getattr(config, "item_quality", False) else []),
            *([SESSION_RATE] if getattr(config, "session_rate", False) else [])]


def inputs_read(config) -> dict[str, bool]:
    """build_examples' switches for the inputs a model version (ModelConfig) or new models (the training
    settings) read: the same attribute names on both."""
    return {"categories": bool(getattr(config, "category_rate", False)),
            "recent": bool(getattr(config, "recent_rate", False)),
            "quality": bool(getattr(config, "item_quality", False)),
            "session": bool(getattr(config, "session_rate", False))}


def build_examples(engine: Engine, clean: pd.DataFrame, history_len: int,
                   categories: bool = True, exclude_ids: list[int] = (), recent: bool = False,
                   quality: bool = False, session: bool = False) -> pd.DataFrame:
    """One example per clean row: user_text, item_text, the ids of the user's recent liked items, label, plus
    the columns drift looks at; `categories`, `recent`, `quality` and `session`: whether a model will read the
    user's rate in the item's categories, their recent rate, the quality of the items they met and their session
    rate (point_in_time_rates). Every feature reads clean_interactions; `exclude_ids`
    are rows this cycle quarantines, not committed to quarantine yet, so the view still shows them: they feed no
    feature either."""
    if clean.empty:
        return pd.DataFrame(columns=["id", "user_id", "item_id", "occurred_at", "label", "user_text", "item_text",
                                     "history_item_ids", "event_type", "dwell_ms", "category", "hour", "item_text_len",
                                     "item_popularity", "user_activity", *SIDE_COLUMNS,
                                     CATEGORY_RATE, RECENT_RATE, ITEM_QUALITY, SESSION_RATE])
    items = fetch_items(engine, sorted(set(clean["item_id"].astype("int64").tolist())))
    histories = fetch_histories(engine, clean, history_len, exclude_ids)
    out = pd.DataFrame({
        "id": clean["id"].astype("int64").to_numpy(),
        "user_id": clean["user_id"].astype("int64").to_numpy(),
        "item_id": clean["item_id"].astype("int64").to_numpy(),
        "occurred_at": clean["occurred_at"].to_numpy(),
        "label": clean["label"].astype("int64").to_numpy(),
        "event_type": clean["event_type"].astype(str).to_numpy(),
        "dwell_ms": clean["dwell_ms"].astype("float64").to_numpy(),
    })
    meta = items.reindex(out["item_id"])
    # drift watches the first (primary) category: a list of several would make every combination a value
    out["category"] = [(item_categories(c) or [""])[0] for c in meta["category"].fillna("")]
    out["item_text"] = [item_text(t, c, d) for t, c, d in
                        zip(meta["title"].fillna(""), meta["category"].fillna(""), meta["description"].fillna(""))]
    out["user_text"] = [user_text(histories.get(i, ([], []))[0]) for i in out["id"]]
    out["history_item_ids"] = [histories.get(i, ([], []))[1] for i in out["id"]]
    out["hour"] = pd.to_datetime(out["occurred_at"], utc=True).dt.hour.astype("int64")
    out["item_text_len"] = out["item_text"].str.len().astype("int64")
    until = pd.Timestamp(out["occurred_at"].max())
    until = until.tz_localize("UTC") if until.tzinfo is None else until
    popularity = relative_activity(engine, "item_popularity_counts", sorted(set(out["item_id"].tolist())), until,
                                   exclude_ids)
    activity = relative_activity(engine, "user_activity_counts", sorted(set(out["user_id"].tolist())), until,
                                 exclude_ids)
    out["item_popularity"] = out["item_id"].map(popularity).fillna(0.0).astype("float64")
    out["user_activity"] = out["user_id"].map(activity).fillna(0.0).astype("float64")
    rates = point_in_time_rates(engine, out, categories, exclude_ids, recent, quality, session)
    for column in [*SIDE_COLUMNS, CATEGORY_RATE, RECENT_RATE, ITEM_QUALITY, SESSION_RATE]:
        out[column] = rates[column].to_numpy()
    return out


HOLDOUT_MODES = ("newest", "newest_per_user", "users")


def split_holdout(examples: pd.DataFrame, share: float, mode: str = "newest",
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a batch into the rows a candidate trains on and the held-out rows the publish gate compares on.

    newest:          the newest `share` of the batch by event time (ties by id).
    newest_per_user: each user's newest `share` of their own rows: the gate sees most of the batch's users, not
                     only whoever was active last (a MovieLens cycle's newest 200 rows are often one user's).
    users:           whole users, drawn at random (seeded) up to `share` of the rows: the gate asks how the
                     candidate does on users it has not trained on this cycle, as the next cycle's newcomers.
    Both parts keep time order.
    """
    if mode not in HOLDOUT_MODES:
        raise ValueError(f"unknown holdout mode {mode!r}: use one of {', '.join(HOLDOUT_MODES)}")
    ordered = examples.sort_values(["occurred_at", "id"], kind="stable").reset_index(drop=True)
    n = len(ordered)
    if mode == "newest":
        held = np.arange(n) >= n - int(np.ceil(n * share))
    elif mode == "newest_per_user":
        by_user = ordered.groupby("user_id", sort=False)
        from_newest = (by_user.cumcount(ascending=False) + 0.5).to_numpy()
        # a user's row is held out while it lies in their newest `share`; one-row users stay in training
        held = from_newest / by_user["id"].transform("size").to_numpy() < share
    else:
        sizes = ordered["user_id"].value_counts(sort=False)
        rng = np.random.default_rng([seed, int(ordered["id"].iloc[0]) if n else 0])  # a new draw per batch
        users = sizes.index.to_numpy()[rng.permutation(len(sizes))]
        picked, total = [], 0
        for user in users:  # skip a user who would overshoot the share: a heavy user must not be the whole gate
            if total + sizes[user] <= np.ceil(n * share):
                picked.append(user)
                total += sizes[user]
        if not picked:  # one user fills the batch: nobody else to hold out
            return split_holdout(examples, share, "newest_per_user")
        held = ordered["user_id"].isin(picked).to_numpy()
    return ordered[~held].reset_index(drop=True), ordered[held].reset_index(drop=True)
