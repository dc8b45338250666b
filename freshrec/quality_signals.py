"""The signal columns: what Great Expectations cannot compute from one row, computed with numpy.

Copies of an event earlier in the batch or in earlier batches (copy_gap_s) and a user's peak events per
minute (user_peak_events_per_minute) become columns of the batch, which the suite's expectations then check
like any other column (freshrec.expectations). See docs/data-quality.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from freshrec.settings import QualityRules

# Columns computed before the suite runs (add_signals), checked by its expectations.
SIGNAL_COLUMNS = ["copy_gap_s", "user_peak_events_per_minute"]


def _micros(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(microseconds since the epoch, is_null) of a timestamp column, whatever its resolution."""
    null = series.isna().to_numpy()
    values = pd.DatetimeIndex(series).as_unit("us").asi8.copy()
    values[null] = 0
    return values, null


def _rolling_counts(keys: np.ndarray, times: np.ndarray, window: int) -> np.ndarray:
    """For rows sorted by (key, time): how many rows of the same key fall in (t - window, t].

    Exact for any time span: times are replaced by their rank among the batch's distinct times, so the
    sortable (group, time) key never depends on how far apart the batch's events are (late events,
    week-long backlogs, replays of old data).
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new_group = np.r_[True, keys[1:] != keys[:-1]]
    rank = (np.cumsum(new_group) - 1).astype(np.int64)
    group_start = np.flatnonzero(new_group)[rank]
    distinct = np.unique(times)
    time_rank = np.searchsorted(distinct, times).astype(np.int64)
    # First distinct time inside the window (t - window, t]: its rank bounds the window from the left.
    first_inside = np.searchsorted(distinct, times - window, side="right").astype(np.int64)
    combined = (rank << 32) + time_rank  # < 2^31 groups and < 2^32 distinct times: no overlap, no overflow
    left = np.maximum(np.searchsorted(combined, (rank << 32) + first_inside, side="left"), group_start)
    return np.arange(n) - left + 1


def add_signals(frame: pd.DataFrame, rules: QualityRules,
                earlier: dict[int, float] | None = None) -> pd.DataFrame:
    """The batch plus the signal columns its expectations check (SIGNAL_COLUMNS), computed with numpy.

    copy_gap_s: seconds to the closest earlier copy of the same user, item and event: the previous one in
    this batch (time order; exact copies at the same instant: 0), or an already-consumed one (earlier maps
    row id -> that gap: a producer's retry that landed in a later batch). Infinity: no copy. The first copy of a
    run has none, so it stays clean.
    user_peak_events_per_minute: the most events the row's user has in any one-minute window of the batch
    (the same for all the user's rows, so a bot is quarantined whole).
    """
    out = frame.copy()
    n = len(frame)
    ids = frame["id"].to_numpy(dtype="int64", na_value=0)
    users = frame["user_id"].to_numpy(dtype="int64", na_value=0)
    items = frame["item_id"].to_numpy(dtype="int64", na_value=0)
    times, null_time = _micros(frame["occurred_at"])
    events, _ = pd.factorize(frame["event_type"], use_na_sentinel=True)
    null_user = frame["user_id"].isna().to_numpy()
    null_item = frame["item_id"].isna().to_numpy()

    gap = np.full(n, np.inf)  # not NaN: GX leaves nulls out of its mostly share, and every row counts
    keyed = np.flatnonzero(~(null_user | null_item | (events < 0) | null_time))
    if len(keyed) > 1:
        order = keyed[np.lexsort((ids[keyed], times[keyed], events[keyed], items[keyed], users[keyed]))]
        same = np.r_[False, (users[order][1:] == users[order][:-1]) & (items[order][1:] == items[order][:-1])
                     & (events[order][1:] == events[order][:-1])]
        step = np.r_[0, np.diff(times[order])] / 1e6
        gap[order[same]] = step[same]
    if earlier:
        position = pd.Index(ids).get_indexer(list(earlier))
        gaps = np.fromiter(earlier.values(), dtype=float, count=len(earlier))
        keep = position >= 0
        gap[position[keep]] = np.fmin(gap[position[keep]], gaps[keep])
    out["copy_gap_s"] = gap

    peak = np.full(n, np.nan)
    timed = np.flatnonzero(~(null_user | null_time))
    if len(timed):
        order = timed[np.lexsort((times[timed], users[timed]))]
        counts = _rolling_counts(users[order], times[order], 60_000_000)
        per_user = pd.Series(counts, index=users[order]).groupby(level=0).max()
        peak[timed] = per_user.reindex(users[timed]).to_numpy(dtype="float64")
    out["user_peak_events_per_minute"] = peak
    return out
