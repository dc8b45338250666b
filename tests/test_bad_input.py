"""A corpus of bad rows written by a sloppy producer: each lands in quarantine with its reason; nothing is lost."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa

from freshrec import ingest, quality
from freshrec.cycles import begin_cycle, commit_batch

from conftest import count

NOW = datetime.now(timezone.utc)
T = NOW - timedelta(minutes=30)
GOOD = {"user_id": 1, "item_id": 1, "event_type": "click", "label": 1, "dwell_ms": 1200, "occurred_at": T}

# (name, row overrides, expected reason)
CORPUS = [
    ("null user", {"user_id": None}, "null_user_id"),
    ("null item", {"item_id": None}, "null_item_id"),
    ("null event", {"event_type": None}, "null_event_type"),
    ("null label", {"label": None}, "null_label"),
    ("null time", {"occurred_at": None}, "null_occurred_at"),
    ("unknown item", {"item_id": 424242}, "unknown_item"),
    ("extreme item id", {"item_id": 2**63 - 1}, "unknown_item"),
    ("negative item id", {"item_id": -(2**63)}, "unknown_item"),
    ("negative user id", {"user_id": -7}, "bad_user_id"),
    ("zero user id", {"user_id": 0}, "bad_user_id"),
    ("future timestamp", {"occurred_at": NOW + timedelta(days=2)}, "future_timestamp"),
    ("year 9999", {"occurred_at": datetime(9999, 12, 31, tzinfo=timezone.utc)}, "future_timestamp"),
    ("negative dwell", {"dwell_ms": -1}, "dwell_out_of_range"),
    ("absurd dwell", {"dwell_ms": 2_000_000_000}, "dwell_out_of_range"),
    ("label 7", {"label": 7}, "bad_label"),
    ("label -1", {"label": -1}, "bad_label"),
    ("unknown event type", {"event_type": "purchase_v2"}, "unknown_event_type"),
    ("10 kB text", {"event_type": "click" * 2000}, "unknown_event_type"),
    ("SQL-looking text", {"event_type": "click'); DROP TABLE interactions; --"}, "unknown_event_type"),
    ("mojibake text", {"event_type": "cl\u00c3\u00a9ck \ufffd\ufffd"}, "unknown_event_type"),
    ("control characters", {"event_type": "click\r\n\t\x1b[31m"}, "unknown_event_type"),
    ("emoji and RTL", {"event_type": "\U0001f600 \u202eclick"}, "unknown_event_type"),
    ("CSV-breaking text", {"event_type": 'cl,"i"\nck'}, "unknown_event_type"),
]


def insert(conn, rows):
    conn.execute(sa.text(
        "INSERT INTO interactions (user_id, item_id, event_type, label, dwell_ms, occurred_at) "
        "VALUES (:user_id, :item_id, :event_type, :label, :dwell_ms, :occurred_at)"), rows)


def take(engine, rules):
    pulled = ingest.pull_new_interactions(engine, "c", 100_000)
    validated = quality.check_batch(engine, pulled, rules)
    commit_batch(engine, begin_cycle(engine, "c"), pulled, validated)
    return pulled, validated


def test_every_kind_of_bad_row_is_quarantined_with_its_reason(engine):
    rules = quality.QualityRules(event_types=("click", "skip"), bot_events_per_minute=60)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title) SELECT g, 'item ' || g FROM generate_series(1, 50) g"))
        # an earlier batch, so that a retry can land in the next one
        insert(conn, [{**GOOD, "user_id": 900, "item_id": 9, "occurred_at": T - timedelta(minutes=5)}])
    take(engine, rules)

    clean = [{**GOOD, "user_id": 100 + i, "item_id": 1 + i % 50, "occurred_at": T + timedelta(seconds=i)}
             for i in range(300)]
    corpus = [{**GOOD, "user_id": 10 + k, **over} for k, (_, over, _) in enumerate(CORPUS)]
    dup = {**GOOD, "user_id": 50, "item_id": 2}
    extra = [
        ("exact duplicate", dup, None), ("exact duplicate", dup, "duplicate"),
        ("near duplicate", {**dup, "occurred_at": T + timedelta(seconds=1)}, "near_duplicate"),
        ("retry of a consumed row", {**GOOD, "user_id": 900, "item_id": 9, "occurred_at": T - timedelta(minutes=5)},
         "duplicate"),
    ]
    bot = [{**GOOD, "user_id": 66, "item_id": 1 + i % 50, "occurred_at": T + timedelta(seconds=i / 4)}
           for i in range(100)]
    with engine.begin() as conn:
        insert(conn, clean + corpus + [r for _, r, _ in extra] + bot)
    pulled, validated = take(engine, rules)
    inserted = len(clean) + len(corpus) + len(extra) + len(bot)
    assert pulled.rows == inserted
    assert validated.accepted
    assert len(validated.clean) + len(validated.quarantined) == inserted  # nothing lost
    assert len(CORPUS) + len(extra) - 1 >= 20

    with engine.connect() as conn:
        by_id = {r.interaction_id: r.reasons for r in conn.execute(sa.text(
            "SELECT interaction_id, reasons FROM quarantine"))}
    reasons_by_row = dict(zip(pulled.frame["id"].astype(int), quality.row_reasons(
        pulled.frame, rules, quality.known_items(engine, list(range(1, 51))), NOW,
        earlier=quality.earlier_copies(engine, pulled.frame, pulled.from_cursor, 2.0, T))))
    ids = pulled.frame["id"].astype(int).tolist()
    offset = len(clean)
    for k, (name, _, reason) in enumerate(CORPUS):
        assert reason in by_id.get(ids[offset + k], []), name
    offset += len(CORPUS)
    for k, (name, _, reason) in enumerate(extra):
        if reason is None:
            assert ids[offset + k] not in by_id, "the first copy stays clean"
        else:
            assert reason in by_id.get(ids[offset + k], []), name
    offset += len(extra)
    assert all("bot_user" in by_id[i] for i in ids[offset:])
    assert all(i not in by_id for i in ids[:len(clean)])
    assert by_id == {i: r for i, r in reasons_by_row.items() if r}
    assert count(engine, "interactions") == inserted + 1  # quarantine never deletes


# (name, SQL expression for one column of an otherwise good row, expected reason)
POISON = [
    ("3 MB event_type", "event_type", "repeat('x', 3000000)", "oversized_field"),
    ("3 MB of quotes and newlines", "event_type", "repeat('\"' || chr(10) || ',', 1000000)", "oversized_field"),
    ("+infinity occurred_at", "occurred_at", "'infinity'", "future_timestamp"),
    ("-infinity occurred_at", "occurred_at", "'-infinity'", "implausible_timestamp"),
    ("year 1900", "occurred_at", "'1900-01-01 00:00:00+00'", "implausible_timestamp"),
    ("zero epoch", "occurred_at", "'1970-01-01 00:00:00+00'", "implausible_timestamp"),
    ("year 9999", "occurred_at", "'9999-12-31 23:59:59+00'", "future_timestamp"),
    ("BC date", "occurred_at", "'4713-01-01 00:00:00+00 BC'", "implausible_timestamp"),
    ("odd zone offset", "occurred_at", "'1901-06-01 12:00:00+00:09:21'", "implausible_timestamp"),
    ("max bigint user", "user_id", "9223372036854775807", None),
    ("max bigint item", "item_id", "9223372036854775807", "unknown_item"),
    ("min bigint user", "user_id", "-9223372036854775808", "bad_user_id"),
    ("control characters", "event_type", "'click' || chr(1) || chr(27) || chr(127)", "unknown_event_type"),
    ("+infinity inserted_at", "inserted_at", "'infinity'", None),
]


def test_no_single_row_stops_the_stream(engine):
    """Each poison row lands in quarantine with a reason of its own; the rest of the batch goes on."""
    rules = quality.QualityRules(event_types=("click", "skip"), bot_events_per_minute=60)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title) SELECT g, 'item ' || g FROM generate_series(1, 50) g"))
        insert(conn, [{**GOOD, "user_id": 100 + i, "item_id": 1 + i % 50, "occurred_at": T + timedelta(seconds=i)}
                      for i in range(100)])
        ids = {}
        for k, (name, column, expression, _) in enumerate(POISON):
            values = {"user_id": str(1000 + k), "item_id": "1", "event_type": "'click'", "label": "1",
                      "dwell_ms": "10", "occurred_at": "now() - interval '1 hour'", column: expression}
            # expressions come from the list above, not from user input
            ids[name] = conn.execute(sa.text(
                "INSERT INTO interactions (" + ", ".join(values) + ") VALUES (" + ", ".join(values.values())
                + ") RETURNING id")).scalar_one()
    pulled, validated = take(engine, rules)
    assert pulled.rows == 100 + len(POISON)
    assert validated.accepted and len(validated.clean) >= 100
    with engine.connect() as conn:
        by_id = {r.interaction_id: r.reasons for r in conn.execute(sa.text(
            "SELECT interaction_id, reasons FROM quarantine"))}
        cursor = conn.execute(sa.text("SELECT last_id FROM ingest_cursor WHERE consumer = 'c'")).scalar_one()
    assert cursor == max(pulled.frame["id"])  # the cursor moved past every poison row
    for name, _, _, reason in POISON:
        if reason is None:
            assert ids[name] not in by_id, name  # a legal extreme value is not a reason
        else:
            assert reason in by_id.get(ids[name], []), (name, by_id.get(ids[name]))
            assert "batch_rejected" not in by_id[ids[name]], name
    assert set(by_id[ids["3 MB event_type"]]) == {"unknown_event_type", "oversized_field"}
    stored = pulled.frame.set_index("id").loc[ids["3 MB event_type"], "event_type"]
    assert len(stored) == rules.max_field_chars + 1  # cut by the pull, never pulled whole


def test_quarantined_bot_likes_do_not_move_the_item_rate(engine):
    """Training (point-in-time) and serving (now) features read the same clean relation: a bot's likes of
    item 2, quarantined as bot_user, change neither its like-rate nor the bot-free users' features."""
    import pandas as pd

    from freshrec import features

    rules = quality.QualityRules(event_types=("click", "skip"), bot_events_per_minute=60,
                                 batch_reject_share=1.0)  # bot-heavy batch
    people = [{**GOOD, "user_id": 100 + i, "item_id": 2, "label": i % 2, "occurred_at": T + timedelta(minutes=i)}
              for i in range(10)]
    bot = [{**GOOD, "user_id": 66, "item_id": 2, "label": 1, "occurred_at": T + timedelta(seconds=i / 4)}
           for i in range(200)]
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title, category) SELECT g, 'item ' || g, 'music' "
                             "FROM generate_series(1, 5) g"))
        insert(conn, people + bot)
    # Inside the cycle, before its commit writes the quarantine: the cycle's own examples leave the bot out too.
    pulled = ingest.pull_new_interactions(engine, "c", 100_000)
    in_cycle = quality.check_batch(engine, pulled, rules)
    from freshrec.steps import quarantined_ids

    examples = features.build_examples(engine, in_cycle.clean, 5, exclude_ids=quarantined_ids(in_cycle))
    last = examples.sort_values("occurred_at").iloc[-1]  # the tenth person: nine people before, no bot
    assert last["item_log_n"] == pytest.approx(np.log1p(9)), last
    assert last["item_rate"] == pytest.approx(float(features.side_features([0], [0], [9], [4])["item_rate"][0]))
    _, validated = take(engine, rules)
    assert validated.reason_counts.get("bot_user") == 200 and len(validated.clean) == 10

    later = pd.DataFrame({"id": [10**9], "user_id": [100], "item_id": [2],
                          "occurred_at": [pd.Timestamp(NOW + timedelta(minutes=1))]})
    training = features.point_in_time_rates(engine, later)
    with engine.connect() as conn:
        serving = conn.execute(features.query("rate_counts_now"), {"user_id": 100, "item_ids": [2]}).one()
        popularity = conn.execute(features.query("item_popularity_counts"), {
            "ids": [2], "since": NOW - timedelta(days=7), "until": NOW, "exclude_ids": []}).one()
    expected = features.side_features([1], [0], [10], [5])  # user 100: one dislike; item 2: 5 of 10 people
    assert (serving.item_n, serving.item_pos, serving.user_n, serving.user_pos) == (10, 5, 1, 0)
    for column, values in expected.items():
        assert training[column].iloc[0] == pytest.approx(float(values[0])), column
    assert popularity.n == 10  # the 200 bot rows would make it 210
