"""The signal columns the suite checks: copies of an event (copy_gap_s) and a user's peak rate per minute."""

import math
from datetime import timedelta

import numpy as np
import pytest

from freshrec.quality_signals import SIGNAL_COLUMNS, _rolling_counts, add_signals

from quality_frames import NOW, RULES, frame


@pytest.mark.unit
def test_copy_gap_is_the_gap_to_the_previous_copy():
    t = NOW - timedelta(minutes=1)
    df = frame([{"occurred_at": t}, {"occurred_at": t}, {"occurred_at": t + timedelta(seconds=1)},
                {"occurred_at": t + timedelta(seconds=30)}, {"occurred_at": t, "event_type": "skip"},
                {"occurred_at": t, "user_id": None}, {"occurred_at": t, "item_id": 2}])
    out = add_signals(df, RULES)
    assert list(out.columns) == list(df.columns) + SIGNAL_COLUMNS
    # First copy: none; same instant: 0; then the gap to the previous copy.
    # Another event, a null user, another item: no copy.
    assert out["copy_gap_s"].tolist() == [math.inf, 0.0, 1.0, 29.0, math.inf, math.inf, math.inf]


@pytest.mark.unit
def test_copy_gap_takes_the_closer_of_the_batch_and_the_consumed_copy():
    t = NOW - timedelta(minutes=1)
    df = frame([{"occurred_at": t}, {"occurred_at": t + timedelta(seconds=10)}, {"user_id": 2}])
    # id 1 repeats a consumed row 0.5 s away; id 2's consumed copy is farther than its copy in the batch; id 3
    # repeats a consumed row at the same instant; id 99 is not in the batch.
    out = add_signals(df, RULES, earlier={1: 0.5, 2: 60.0, 3: 0.0, 99: 0.0})
    assert out["copy_gap_s"].tolist() == [0.5, 10.0, 0.0]


@pytest.mark.unit
def test_peak_events_per_minute_is_per_user_and_exact_on_any_span():
    # A late event 20 days old widens the batch beyond 2^40 microseconds (12.7 days): a normal user with one
    # event every 30 s must still not be a bot, and a real bot in the same batch still is.
    start = NOW - timedelta(hours=2)
    human = [{"user_id": 2, "item_id": 1 + i % 3, "occurred_at": start + timedelta(seconds=30 * i)} for i in range(130)]
    late = [{"user_id": 3, "item_id": 1, "occurred_at": NOW - timedelta(days=20)}]
    old_bot = [{"user_id": 9, "item_id": 1 + i % 3, "occurred_at": NOW - timedelta(days=19, seconds=-i)}
               for i in range(40)]
    no_time = [{"user_id": 4, "occurred_at": None}]
    peak = add_signals(frame(human + late + old_bot + no_time), RULES)["user_peak_events_per_minute"].tolist()
    assert peak[:130] == [2.0] * 130  # (t - 60 s, t] holds this event and the one 30 s before
    assert peak[130] == 1.0 and peak[131:171] == [40.0] * 40  # the bot's peak is on every one of its rows
    assert math.isnan(peak[171])  # no time, no rate: GX leaves it out


@pytest.mark.unit
@pytest.mark.parametrize("window", [3, 60_000_000])
def test_rolling_counts_match_a_direct_count(window):
    # Rows sorted by (key, time) over 40 days, in bursts a few microseconds apart, with ties.
    rng = np.random.default_rng(7)
    keys, times = [], []
    for key in range(5):
        centers = rng.integers(0, 40 * 86_400 * 10**6, 20)
        keys += [key] * 80
        times += sorted(rng.choice(centers, 80) + rng.integers(0, 5, 80))
    keys, times = np.array(keys), np.array(times)
    # (t - window, t] of the same key, counting tied rows up to and including this one
    expected = [sum(1 for j in range(i + 1) if keys[j] == keys[i] and times[i] - window < times[j])
                for i in range(len(keys))]
    assert _rolling_counts(keys, times, window).tolist() == expected
    assert max(expected) > 1
    assert _rolling_counts(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), window).tolist() == []
