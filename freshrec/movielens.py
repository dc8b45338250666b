"""Load MovieLens (ml-latest-small layout) as items plus an interaction stream in timestamp order.

Item text is title + genres; an event is a 'rating' whose label is rating >= 4. Ratings are inserted in
(timestamp, userId, movieId) order, so the ingestion cursor replays them in time order, in cycles of
at most max_batch_rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.errors import FreshrecError
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

POSITIVE_RATING = 4.0


@dataclass
class LoadResult:
    items_created: int
    events_inserted: int
    seconds: float
    first_event: str | None
    last_event: str | None


def read_movielens(directory: Path, limit: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    directory = Path(directory)
    movies_path, ratings_path = directory / "movies.csv", directory / "ratings.csv"
    for path in (movies_path, ratings_path):
        if not path.is_file():
            raise FreshrecError(
                f"{path} does not exist: pass the folder of MovieLens ml-latest-small (it holds movies.csv and ratings.csv)."
            )
    try:
        movies = pd.read_csv(movies_path, dtype={"movieId": "int64", "title": "string", "genres": "string"})
        ratings = pd.read_csv(ratings_path, dtype={"userId": "int64", "movieId": "int64",
                                                    "rating": "float64", "timestamp": "int64"})
    except (ValueError, KeyError, pd.errors.ParserError) as exc:
        raise FreshrecError(f"{directory} does not look like MovieLens ml-latest-small ({exc}): check the files.") from None
    missing = {"movieId", "title", "genres"} - set(movies.columns) | {"userId", "movieId", "rating", "timestamp"} - set(ratings.columns)
    if missing:
        raise FreshrecError(f"{directory} lacks the MovieLens column(s) {sorted(missing)}: check the files.")
    ratings = ratings.sort_values(["timestamp", "userId", "movieId"], kind="stable").reset_index(drop=True)
    if limit is not None:
        ratings = ratings.head(limit)
    return movies, ratings


def movie_items(movies: pd.DataFrame) -> dict[str, list]:
    # every genre is a category (items.category is a comma-separated list); item_text does not repeat them
    genres = movies["genres"].fillna("").str.replace("|", ", ", regex=False)
    return {"ids": movies["movieId"].tolist(), "titles": movies["title"].fillna("").tolist(),
            "descriptions": genres.tolist(), "categories": genres.tolist()}


def load_movielens(engine: Engine, directory: Path, *, limit: int | None = None, chunk: int = 20_000) -> LoadResult:
    started = time.monotonic()
    movies, ratings = read_movielens(directory, limit)
    with engine.begin() as conn:
        created = conn.execute(query("insert_items"), movie_items(movies)).rowcount
    labels = (ratings["rating"].to_numpy() >= POSITIVE_RATING).astype(np.int16)
    times = pd.to_datetime(ratings["timestamp"], unit="s", utc=True)
    for lo in range(0, len(ratings), chunk):
        hi = min(len(ratings), lo + chunk)
        with engine.begin() as conn:
            conn.execute(query("insert_interactions"), {
                "user_ids": ratings["userId"].iloc[lo:hi].tolist(),
                "item_ids": ratings["movieId"].iloc[lo:hi].tolist(),
                "event_types": ["rating"] * (hi - lo),
                "labels": labels[lo:hi].tolist(),
                "dwell_ms": [None] * (hi - lo),
                "occurred_at": [t.to_pydatetime() for t in times.iloc[lo:hi]],
            })
        log.info("loaded %d/%d ratings", hi, len(ratings))
    return LoadResult(created, len(ratings), time.monotonic() - started,
                      times.iloc[0].isoformat() if len(times) else None,
                      times.iloc[-1].isoformat() if len(times) else None)
