"""A synthetic catalogue and interaction stream with users whose interests shift at a drift point.

Items get text from per-category vocabularies, so a text model can learn what a user likes. Each user
has latent interests over categories; an event shows the user an item (mostly from their interests, sometimes
popular ones) and the user engages with a probability that grows with their interest in its category.
At the drift point every user's interests are redrawn, so what they see and what they click both change.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy.engine import Engine

from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

CATEGORY_WORDS: dict[str, list[str]] = {
    "sports": ["football", "marathon", "tennis", "stadium", "league", "coach", "sprint", "goalkeeper",
               "championship", "cycling", "training", "tournament", "referee", "olympic", "racket", "season"],
    "cooking": ["recipe", "pasta", "baking", "spices", "kitchen", "sourdough", "grill", "vegan", "dessert",
                "noodles", "curry", "chef", "braised", "pastry", "salad", "ferment"],
    "technology": ["laptop", "smartphone", "software", "processor", "cloud", "gadget", "robotics", "chip",
                   "keyboard", "startup", "coding", "network", "battery", "display", "server", "algorithm"],
    "travel": ["beach", "passport", "backpacking", "island", "hotel", "mountains", "roadtrip", "flight",
               "museum", "itinerary", "hostel", "cruise", "desert", "glacier", "village", "safari"],
    "music": ["guitar", "concert", "album", "jazz", "playlist", "vinyl", "orchestra", "drummer", "festival",
              "melody", "singer", "piano", "hiphop", "symphony", "remix", "acoustic"],
    "finance": ["stocks", "budget", "savings", "mortgage", "investing", "dividend", "pension", "crypto",
                "inflation", "taxes", "portfolio", "bonds", "credit", "banking", "retirement", "index"],
    "gaming": ["console", "multiplayer", "quest", "esports", "controller", "speedrun", "dungeon", "arcade",
               "strategy", "shooter", "rpg", "pixel", "boss", "loot", "sandbox", "platformer"],
    "fashion": ["sneakers", "denim", "runway", "jacket", "vintage", "couture", "handbag", "streetwear",
                "dress", "tailoring", "boots", "accessories", "silk", "wardrobe", "designer", "knitwear"],
}
GENERIC_WORDS = ["guide", "review", "best", "new", "ultimate", "daily", "top", "classic", "essential",
                 "complete", "weekly", "simple", "hidden", "modern", "honest", "quick"]
CATALOGUE_SEED = 20_261_130  # fixed: every generator builds the same catalogue, so inserts are idempotent


@dataclass(frozen=True)
class StreamSpec:
    users: int = 300
    items: int = 400
    events: int = 5_000
    rate: float = 0.0  # events per second; 0 inserts everything at once with event times spread over the past
    drift_at: float | None = 0.5  # fraction of the stream after which interests shift; None: no drift
    seed: int = 0
    noise: float = 0.0  # share of events turned into realistic dirt (duplicates, unknown items, bad values)
    bulk_first: int = 0  # with rate > 0: insert this many events at once (a history), then stream the rest
    chunk: int = 5_000


@dataclass(frozen=True)
class Catalogue:
    ids: np.ndarray
    titles: list[str]
    descriptions: list[str]
    categories: list[str]
    category_index: np.ndarray  # category number of each item
    popularity: np.ndarray  # exposure weights, Zipf-like
    quality: np.ndarray  # per-item engagement offset


@dataclass
class GenerateResult:
    items_created: int
    events_inserted: int
    seconds: float
    drift_event_index: int | None


def build_catalogue(n_items: int) -> Catalogue:
    rng = np.random.default_rng(CATALOGUE_SEED)
    names = list(CATEGORY_WORDS)
    cat_idx = np.arange(n_items) % len(names)
    titles, descriptions = [], []
    for i in range(n_items):
        words = CATEGORY_WORDS[names[cat_idx[i]]]
        head = rng.choice(GENERIC_WORDS)
        topic = rng.choice(words, size=2, replace=False)
        titles.append(f"{head.capitalize()} {topic[0]} and {topic[1]} #{i + 1}")
        body = list(rng.choice(words, size=6)) + list(rng.choice(GENERIC_WORDS, size=2))
        rng.shuffle(body)
        descriptions.append(" ".join(body))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = rng.permutation(popularity)
    return Catalogue(
        ids=np.arange(1, n_items + 1, dtype=np.int64),
        titles=titles,
        descriptions=descriptions,
        categories=[names[c] for c in cat_idx],
        category_index=cat_idx,
        popularity=popularity / popularity.sum(),
        quality=rng.normal(0.0, 0.5, n_items),
    )


def ensure_catalogue(engine: Engine, catalogue: Catalogue) -> int:
    """Insert the catalogue's items that are missing; returns how many were new."""
    with engine.begin() as conn:
        result = conn.execute(query("insert_items"), {
            "ids": catalogue.ids.tolist(), "titles": catalogue.titles,
            "descriptions": catalogue.descriptions, "categories": catalogue.categories,
        })
        return result.rowcount


def _interests(rng: np.random.Generator, users: int, n_cat: int) -> np.ndarray:
    return rng.dirichlet(np.full(n_cat, 0.3), size=users)


def generate_events(spec: StreamSpec, catalogue: Catalogue) -> dict[str, np.ndarray]:
    """The whole event stream as columns (event order = time order); pure, deterministic in spec.seed."""
    rng = np.random.default_rng(spec.seed)
    n_cat = len(CATEGORY_WORDS)
    before = _interests(rng, spec.users, n_cat)
    after = _interests(rng, spec.users, n_cat)
    activity = np.minimum(rng.pareto(1.5, spec.users) + 1.0, 8.0)  # heavy users, but no superhuman ones
    activity /= activity.sum()
    n = spec.events
    drift_index = int(n * spec.drift_at) if spec.drift_at is not None else n
    users = rng.choice(spec.users, size=n, p=activity)
    shifted = np.arange(n) >= drift_index
    interests = np.where(shifted[:, None], after[users], before[users])
    # Exposure: 70% from the user's interests, 30% from what is popular.
    by_interest = rng.random(n) < 0.7
    cats = np.array([rng.choice(n_cat, p=p) for p in interests])
    items_in_cat = [np.flatnonzero(catalogue.category_index == c) for c in range(n_cat)]
    chosen = np.empty(n, dtype=np.int64)
    for c in range(n_cat):
        pool = items_in_cat[c]
        if len(pool) == 0:  # a catalogue smaller than the category list: show popular items instead
            by_interest &= cats != c
            continue
        mask = by_interest & (cats == c)
        weights = catalogue.popularity[pool] / catalogue.popularity[pool].sum()
        chosen[mask] = rng.choice(pool, size=int(mask.sum()), p=weights)
    rest = ~by_interest
    chosen[rest] = rng.choice(len(catalogue.ids), size=int(rest.sum()), p=catalogue.popularity)
    affinity = interests[np.arange(n), catalogue.category_index[chosen]]
    logit = 5.0 * (affinity - 0.25) + catalogue.quality[chosen] - 0.3
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int16)
    kind = rng.random(n)
    event = np.where(label == 1, np.where(kind < 0.1, "purchase", np.where(kind < 0.25, "like", "click")), "skip")
    dwell = np.where(label == 1, rng.lognormal(10.0, 0.7, n), rng.lognormal(7.0, 0.5, n)).astype(np.int64)
    dwell = np.minimum(dwell, 3_000_000)
    cols = {
        "user_ids": (users + 1).astype(np.int64),
        "item_ids": catalogue.ids[chosen],
        "event_types": event.astype(object),
        "labels": label,
        "dwell_ms": dwell,
        "copy_previous": np.zeros(n, dtype=bool),  # a producer's retry: same event, same time
        "future": np.zeros(n, dtype=bool),  # a device whose clock runs a day ahead
        "drift_index": np.array([drift_index if spec.drift_at is not None else -1]),
    }
    _add_noise(cols, spec.noise, rng, int(catalogue.ids.max()))
    return cols


NOISE_KINDS = ("duplicate", "unknown_item", "bad_dwell", "bad_label", "future_time")


def _add_noise(cols: dict[str, np.ndarray], share: float, rng: np.random.Generator, max_item_id: int) -> None:
    """Turn a share of events into the dirt real producers send; validation must quarantine each of them."""
    n = len(cols["labels"])
    if share <= 0 or n < 2:
        return
    picked = np.flatnonzero(rng.random(n) < share)
    picked = picked[picked > 0]
    kinds = rng.choice(len(NOISE_KINDS), size=len(picked))
    for k, kind in zip(picked, kinds):
        name = NOISE_KINDS[kind]
        if name == "duplicate":
            for key in ("user_ids", "item_ids", "event_types", "labels", "dwell_ms"):
                cols[key][k] = cols[key][k - 1]
            cols["copy_previous"][k] = True
        elif name == "unknown_item":
            cols["item_ids"][k] = max_item_id + 1_000_000 + k
        elif name == "bad_dwell":
            cols["dwell_ms"][k] = -int(rng.integers(1, 5_000))
        elif name == "bad_label":
            cols["labels"][k] = 7
        else:
            cols["future"][k] = True


def _insert_chunk(engine: Engine, cols: dict[str, np.ndarray], lo: int, hi: int, times: list[datetime]) -> None:
    times = list(times)
    written = datetime.now(timezone.utc)
    for j, k in enumerate(range(lo, hi)):
        if cols["copy_previous"][k] and j > 0:
            times[j] = times[j - 1]
        elif cols["future"][k]:
            times[j] = written + timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(query("insert_interactions"), {
            "user_ids": cols["user_ids"][lo:hi].tolist(),
            "item_ids": cols["item_ids"][lo:hi].tolist(),
            "event_types": cols["event_types"][lo:hi].tolist(),
            "labels": cols["labels"][lo:hi].tolist(),
            "dwell_ms": cols["dwell_ms"][lo:hi].tolist(),
            "occurred_at": times,
        })


def insert_stream(
    engine: Engine,
    spec: StreamSpec,
    *,
    stop: threading.Event | None = None,
    progress_every_s: float = 5.0,
) -> GenerateResult:
    """Create the catalogue (idempotently) and insert the stream, live at spec.rate or all at once."""
    started = time.monotonic()
    catalogue = build_catalogue(spec.items)
    created = ensure_catalogue(engine, catalogue)
    cols = generate_events(spec, catalogue)
    drift_index = int(cols["drift_index"][0])
    n = spec.events
    inserted = 0
    bulk = n if spec.rate <= 0 else min(n, spec.bulk_first)
    if bulk:
        # All at once: event times one second apart, ending now, in stream order.
        end = datetime.now(timezone.utc)
        for lo in range(0, bulk, spec.chunk):
            hi = min(bulk, lo + spec.chunk)
            _insert_chunk(engine, cols, lo, hi, [end - timedelta(seconds=bulk - k) for k in range(lo, hi)])
            inserted = hi
    if spec.rate > 0:
        tick = 0.2  # small transactions, five a second
        stream_start = time.monotonic()
        last_report = stream_start
        while inserted < n and not (stop is not None and stop.is_set()):
            due = min(n, bulk + int((time.monotonic() - stream_start) * spec.rate) + 1)
            if due > inserted:
                now = datetime.now(timezone.utc)
                _insert_chunk(engine, cols, inserted, due, [now] * (due - inserted))
                inserted = due
            if time.monotonic() - last_report >= progress_every_s:
                log.info("generated %d/%d events%s", inserted, n,
                         " (past the drift point)" if 0 <= drift_index <= inserted else "")
                last_report = time.monotonic()
            time.sleep(tick)
    return GenerateResult(created, inserted, time.monotonic() - started, drift_index if drift_index >= 0 else None)
