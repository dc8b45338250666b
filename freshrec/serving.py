"""Serving: load the champion from the registry, rank items for a user, and hot-swap when it changes.

A serving process resolves the alias to a version once, reads that version's bytes, verifies their sha256,
and builds a Scorer from the safetensors (no pickle). The ChampionWatcher LISTENs on the registry's channel
and, when a new champion is published or rolled back, builds the new Scorer completely before swapping the
reference, so a request sees the old model or the new one, never half of either. It reconnects when the
database restarts and re-checks the alias after every reconnect, so a notification missed while
disconnected still leads to the swap.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.errors import ModelError
from freshrec.features import (CATEGORY_RATE, ITEM_QUALITY, RATE_PRIOR_WEIGHT, RECENT_EVENTS, RECENT_RATE,
                               SESSION_EVENTS, SESSION_RATE, category_rate, inputs_read, item_categories,
                               item_quality, item_text, recent_rate, side_columns, side_features, user_text)
from freshrec.registry import CHANNEL
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

SERVING_ROLE = "freshrec_serving"  # created by sql/migrations/0004


def serving_engine(url: str, role: str | None = SERVING_ROLE) -> Engine:
    """An engine whose sessions run as the read-only serving role (least privilege)."""
    import sqlalchemy as sa

    from freshrec.db import parse_database_url

    options = {"options": "-c role=" + role} if role else {}  # a libpq startup option, not SQL
    return sa.create_engine(parse_database_url(url), pool_pre_ping=True,
                            connect_args={"connect_timeout": 10, "application_name": "freshrec-serving", **options})


@dataclass
class Scorer:
    """A loaded model version that ranks items for a user. Item embeddings are cached per scorer."""
    version: int
    sha256: str
    model: object
    config: object
    tokenizer: object
    loaded_at: datetime

    def __post_init__(self) -> None:
        self._item_cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self.embedded_items = 0  # items this scorer has embedded: each at most once
        self._user_cache: OrderedDict[str, np.ndarray] = OrderedDict()  # user text -> embedding, newest last

    def _embed(self, texts: list[str], max_len: int) -> np.ndarray:
        from freshrec.inference import embed_texts

        if not texts:
            return np.zeros((0, self.config.hidden_size), dtype=np.float32)
        return embed_texts(self.model, self.tokenizer, texts, max_len, next(self.model.parameters()).device)

    def item_embeddings(self, items: pd.DataFrame) -> np.ndarray:
        with self._lock:
            missing = items[~items["id"].isin(list(self._item_cache))]
            if len(missing):
                texts = [item_text(t, c, d) for t, c, d in zip(missing["title"], missing["category"],
                                                              missing["description"])]
                for item_id, emb in zip(missing["id"], self._embed(texts, self.config.max_item_tokens)):
                    self._item_cache[int(item_id)] = emb
                self.embedded_items += len(missing)
            return np.stack([self._item_cache[int(i)] for i in items["id"]])

    def user_embedding(self, history_titles: list[str], cache_size: int = 10_000) -> np.ndarray:
        """The user text's embedding, from a bounded LRU keyed by the text (a new like changes the text)."""
        text = user_text(history_titles)
        with self._lock:
            if text in self._user_cache:
                self._user_cache.move_to_end(text)
                return self._user_cache[text]
        emb = self._embed([text], self.config.max_user_tokens)
        with self._lock:
            self._user_cache[text] = emb
            while len(self._user_cache) > cache_size:
                self._user_cache.popitem(last=False)
        return emb

    def score(self, history_titles: list[str], items: pd.DataFrame, side: np.ndarray | None = None,
              history_item_ids: list[int] | None = None, item_emb: np.ndarray | None = None) -> np.ndarray:
        """P(engage) of the user (given by their recent liked items' titles and ids) for each item; side: one
        row of features.side_columns(config) per item (for versions trained with them); item_emb: the items'
        embeddings when the caller holds them already (freshrec.ranking's catalogue)."""
        import torch

        from freshrec.model import id_inputs

        user = self.user_embedding(history_titles)
        item = self.item_embeddings(items) if item_emb is None else item_emb
        # one history row for the one user: the id term broadcasts it over the items
        ids = id_inputs(self.config, items["id"].to_numpy(dtype=np.int64), [history_item_ids or []])
        with torch.no_grad():
            u = torch.as_tensor(np.repeat(user, len(item), axis=0))
            extra = torch.as_tensor(side, dtype=torch.float32) if self.config.side_features else None
            logits = self.model.score_pairs(u, torch.as_tensor(item), extra, ids)
            return torch.sigmoid(logits.float()).numpy()


def load_scorer(engine: Engine, alias: str = "champion",
                allowed_base_models: tuple[str, ...] | list[str] | None = None) -> Scorer:
    """Resolve the alias once, read that version's bytes, verify them, and build a Scorer.

    allowed_base_models: base model folders the artifact may name besides minilm and tiny (the deployment's
    Settings.base_models_allowed); any other is refused before it is loaded.
    """
    from freshrec.model import load_tokenizer
    from freshrec.artifacts import check_artifact, load_artifact

    with engine.connect() as conn:
        version = conn.execute(query("alias_version"), {"alias": alias}).scalar()
        if version is None:
            raise ModelError(f"There is no {alias} yet: run an update cycle (freshrec run-once) or promote a "
                             "version (freshrec models promote V).")
        row = conn.execute(query("artifact_of_version"), {"version": version}).one()
    if row.artifact is None:
        raise ModelError(f"The {alias} (version {version}) has no stored bytes: promote another version.")
    check_artifact(bytes(row.artifact), row.artifact_sha256, allowed_base_models)
    model, config = load_artifact(bytes(row.artifact), row.artifact_sha256)  # refuses a sha256 mismatch
    model.eval()
    return Scorer(int(version), row.artifact_sha256, model, config, load_tokenizer(config.base_model),
                  datetime.now(timezone.utc))


def rank_items(engine: Engine, scorer: Scorer, user_id: int, item_ids: list[int] | None = None,
               top: int = 10, max_candidates: int = 20_000, catalogue=None) -> list[dict]:
    """The user's best items by the scorer: from item_ids, or from the catalogue (newest max_candidates), or
    from `catalogue` (a freshrec.ranking.Catalogue of this scorer: items and their embeddings) when given."""
    with engine.connect() as conn:
        liked = conn.execute(query("user_recent_likes"), {"user_id": user_id,
                                                          "history_len": scorer.config.history_len}).all()
        if item_ids:
            items = pd.DataFrame(conn.execute(query("items_by_id"), {"ids": item_ids}).all(),
                                 columns=["id", "title", "description", "category"])
            unknown = sorted(set(item_ids) - set(items["id"]))
            if unknown:
                raise ModelError(f"Item(s) {unknown[:5]} are not in the catalogue: pass ids from the items table.")
        elif catalogue is not None:
            items = catalogue.items
        else:
            items = pd.DataFrame(conn.execute(query("catalogue_items"), {"limit": max_candidates}).all(),
                                 columns=["id", "title", "description", "category"])
        counts = conn.execute(query("rate_counts_now"), {"user_id": user_id,
                                                         "item_ids": items["id"].astype("int64").tolist()}).all()
        reads = inputs_read(scorer.config)
        by_category = ({r.category: (int(r.n), int(r.pos)) for r in
                        conn.execute(query("user_category_counts_now"), {"user_id": user_id})}
                       if reads["categories"] else {})
        latest = (conn.execute(query("user_recent_counts_now"), {"user_id": user_id, "recent_events": RECENT_EVENTS,
                                                                 "session_events": SESSION_EVENTS}).one()
                  if reads["recent"] or reads["session"] else None)
        met = (conn.execute(query("user_item_quality_now"), {"user_id": user_id,
                                                              "weight": RATE_PRIOR_WEIGHT}).one()
               if reads["quality"] else None)
    if items.empty:
        return []
    by_item = {int(r.item_id): r for r in counts}
    user_n = counts[0].user_n if counts else 0
    user_pos = counts[0].user_pos if counts else 0
    side = side_features([user_n] * len(items), [user_pos] * len(items),
                         [by_item[int(i)].item_n if int(i) in by_item else 0 for i in items["id"]],
                         [by_item[int(i)].item_pos if int(i) in by_item else 0 for i in items["id"]])
    if reads["categories"]:  # per item, the user's rate in its categories (those they never met: 0 of 0)
        side[CATEGORY_RATE] = np.array([
            category_rate(rate, [by_category.get(c, (0, 0)) for c in item_categories(category)])
            for rate, category in zip(side["user_rate"], items["category"])])
    side[RECENT_RATE] = (recent_rate(side["user_rate"], latest.n, latest.pos) if reads["recent"]
                         else side["user_rate"])
    side[SESSION_RATE] = (recent_rate(side["user_rate"], latest.session_n, latest.session_pos) if reads["session"]
                          else side["user_rate"])
    side[ITEM_QUALITY] = np.full(len(items), float(item_quality(met.total, met.n)) if met is not None else 0.5)
    scores = scorer.score([r.title for r in liked], items,
                          np.column_stack([side[c] for c in side_columns(scorer.config)]).astype(np.float32),
                          [int(r.item_id) for r in liked],
                          catalogue.embeddings if catalogue is not None and not item_ids else None)
    order = np.argsort(-scores, kind="stable")[:top]
    return [{"item_id": int(items["id"].iloc[i]), "title": items["title"].iloc[i], "score": float(scores[i])}
            for i in order]


class ChampionWatcher:
    """Keeps `scorer` equal to the current champion: LISTEN for publishes, swap in place, reconnect."""

    def __init__(self, engine: Engine, alias: str = "champion", *, recheck_s: float = 30.0,
                 on_swap: Callable[[Scorer | None, Scorer], None] | None = None,
                 allowed_base_models: tuple[str, ...] | list[str] | None = None):
        self.engine = engine
        self.allowed_base_models = allowed_base_models
        self.alias = alias
        self.recheck_s = recheck_s
        self.on_swap = on_swap
        self.scorer: Scorer | None = None  # replaced whole, never modified: readers need no lock
        self.swaps = 0
        self.reconnects = 0
        self.backoffs: list[float] = []  # each wait before reconnecting, newest last (bounded below)
        self._listening = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ChampionWatcher:
        self._thread = threading.Thread(target=self._run, name="freshrec-champion-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _current_version(self) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(query("alias_version"), {"alias": self.alias}).scalar()

    def refresh(self) -> bool:
        """Load and swap in the alias's version if it differs from the one served; True if it swapped."""
        version = self._current_version()
        if version is None or (self.scorer is not None and self.scorer.version == version):
            return False
        new = load_scorer(self.engine, self.alias, self.allowed_base_models)  # fully built before anyone sees it
        old, self.scorer = self.scorer, new
        self.swaps += 1
        log.info("serving version %d (was %s)", new.version, old.version if old else None)
        if self.on_swap:
            self.on_swap(old, new)
        return True

    def _listen(self) -> None:
        raw = self.engine.raw_connection()
        try:
            dbapi = raw.driver_connection
            dbapi.autocommit = True
            dbapi.cursor().execute("LISTEN " + CHANNEL)  # a constant channel name
            self.refresh()  # anything published while we were not listening
            self._listening = True  # reconnected: the next failure starts the backoff again
            while not self._stop.is_set():
                if select.select([dbapi], [], [], 1.0)[0]:
                    dbapi.poll()
                    if dbapi.notifies:
                        dbapi.notifies.clear()
                        self.refresh()
                elif time.monotonic() - self._last_check > self.recheck_s:
                    self._last_check = time.monotonic()
                    self.refresh()
        finally:
            raw.invalidate()  # a LISTENing autocommit connection never goes back to the pool

    def _run(self) -> None:
        backoff = 0.5
        self._last_check = time.monotonic()
        while not self._stop.is_set():
            try:
                self._listen()
                backoff = 0.5
            except Exception as exc:  # the database went away, or a version failed to load: retry
                if self._listening:  # it had reconnected and worked since the last failure
                    backoff, self._listening = 0.5, False
                self.reconnects += 1
                self.backoffs = [*self.backoffs[-99:], backoff]
                log.warning("champion watcher: %s; reconnecting in %.1f s", str(exc).strip().splitlines()[0],
                            backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
