"""Ranking for a network service: the champion with its catalogue embedded once per version.

A ChampionWatcher (freshrec.serving) LISTENs for publishes and loads each new version. Before requests see
a new version, its whole catalogue (the newest max_candidates items) is embedded once; requests then score
only the user's text against that matrix. The pair (scorer, catalogue) is replaced whole, so a request
ranks with the old version or the new one, never a mix. Items added to the catalogue later are picked up
when the catalogue is older than refresh_s: only the new items are embedded (the scorer keeps its cache).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.errors import ModelError
from freshrec.serving import ChampionWatcher, Scorer, rank_items
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)


class NoChampionYet(ModelError):
    """The service has no champion loaded (none published yet, or it is still loading)."""


@dataclass(frozen=True)
class Catalogue:
    """The catalogue's items and their embeddings by one model version."""
    version: int
    items: pd.DataFrame
    embeddings: np.ndarray
    built_at: float = field(default_factory=time.monotonic)


def build_catalogue(engine: Engine, scorer: Scorer, max_items: int) -> Catalogue:
    """Read the newest max_items items and embed those the scorer has not embedded yet."""
    with engine.connect() as conn:
        items = pd.DataFrame(conn.execute(query("catalogue_items"), {"limit": max_items}).all(),
                             columns=["id", "title", "description", "category"])
    started = time.monotonic()
    embeddings = (scorer.item_embeddings(items) if len(items)
                  else np.zeros((0, scorer.config.hidden_size), dtype=np.float32))
    log.info("catalogue of %d items for version %d ready in %.1f s", len(items), scorer.version,
             time.monotonic() - started)
    return Catalogue(scorer.version, items, embeddings)


class RankingService:
    """The champion (hot-swapped) and its catalogue, for concurrent requests."""

    def __init__(self, engine: Engine, *, max_candidates: int = 20_000, refresh_s: float = 60.0,
                 recheck_s: float = 30.0, on_swap: Callable[[int | None, int], None] | None = None,
                 allowed_base_models: tuple[str, ...] | None = None):
        self.engine = engine
        self.max_candidates = max_candidates
        self.refresh_s = refresh_s
        self.on_swap = on_swap
        self.swaps = 0
        self._current: tuple[Scorer, Catalogue | None] | None = None  # replaced whole, never modified
        self._build_lock = threading.Lock()
        self.watcher = ChampionWatcher(engine, recheck_s=recheck_s, on_swap=self._swap,
                                       allowed_base_models=allowed_base_models)

    def start(self) -> RankingService:
        self.watcher.start()
        return self

    def stop(self) -> None:
        self.watcher.stop()

    @property
    def scorer(self) -> Scorer | None:
        current = self._current
        return current[0] if current else None

    @property
    def catalogue_size(self) -> int:
        current = self._current
        return len(current[1].items) if current and current[1] is not None else 0

    def _swap(self, old: Scorer | None, new: Scorer) -> None:
        """Called by the watcher's thread with a fully loaded version: embed its catalogue, then expose it."""
        try:
            catalogue = build_catalogue(self.engine, new, self.max_candidates)
        except Exception as exc:  # the first request builds it instead
            log.warning("catalogue of version %d not built at swap: %s", new.version, exc)
            catalogue = None
        previous = self.scorer
        self._current = (new, catalogue)
        self.swaps += 1
        if self.on_swap:
            self.on_swap(previous.version if previous else None, new.version)

    def _catalogue(self, scorer: Scorer, catalogue: Catalogue | None) -> Catalogue:
        """This version's catalogue, rebuilt (new items only are embedded) when missing or older than refresh_s."""
        if catalogue is not None and time.monotonic() - catalogue.built_at <= self.refresh_s:
            return catalogue
        # one request rebuilds; the others keep using the one they have (if any)
        if not self._build_lock.acquire(blocking=catalogue is None):
            return catalogue
        try:
            current = self._current
            if current and current[0] is scorer and current[1] is not None and current[1] is not catalogue:
                return current[1]  # someone else rebuilt it meanwhile
            fresh = build_catalogue(self.engine, scorer, self.max_candidates)
            if self._current and self._current[0] is scorer:
                self._current = (scorer, fresh)
            return fresh
        finally:
            self._build_lock.release()

    def rank(self, user_id: int, item_ids: list[int] | None = None, top: int = 10) -> tuple[int, list[dict]]:
        """(version, best items) for the user, from item_ids or the whole catalogue."""
        current = self._current
        if current is None:
            raise NoChampionYet("No champion is loaded yet: publish one (freshrec run-once) or promote a version "
                                "(freshrec models promote V); the service swaps it in by itself.")
        scorer, catalogue = current
        if item_ids:
            return scorer.version, rank_items(self.engine, scorer, user_id, item_ids, top)
        return scorer.version, rank_items(self.engine, scorer, user_id, None, top,
                                          catalogue=self._catalogue(scorer, catalogue))
