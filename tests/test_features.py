"""freshrec.features: the held-out split, point-in-time rates, and the same features in training, serving and the
bench's pandas copies."""

import numpy as np
import pytest

from freshrec.features import NO_HISTORY, item_text, side_features, user_text

from helpers import movielens_folder


def test_holdout_modes_spread_the_gate_over_users_and_keep_time_order():
    import pandas as pd

    from freshrec.features import split_holdout

    # one heavy user whose session is the newest fifth of the batch, and nine light users before them
    users = [u for u in range(1, 10) for _ in range(8)] + [0] * 128
    batch = pd.DataFrame({"id": np.arange(200), "user_id": users,
                          "occurred_at": pd.date_range("2026-01-01", periods=200, freq="s", tz="UTC")})
    batch = batch.sample(frac=1, random_state=0)  # arrival order is not time order
    splits = {mode: split_holdout(batch, 0.2, mode, seed=3) for mode in ("newest", "newest_per_user", "users")}
    for train_part, held in splits.values():
        assert sorted([*train_part["id"], *held["id"]]) == list(range(200))  # every row on exactly one side
        assert train_part["occurred_at"].is_monotonic_increasing and held["occurred_at"].is_monotonic_increasing
    assert set(splits["newest"][1]["user_id"]) == {0}  # the newest 40 rows are the heavy user's
    per_user = splits["newest_per_user"][1]
    assert set(per_user["user_id"]) == set(range(10)) and len(per_user) == 9 * 2 + 26
    for user, rows in per_user.groupby("user_id"):  # each user's own newest rows
        assert rows["id"].min() > batch.loc[(batch["user_id"] == user) & ~batch["id"].isin(rows["id"]), "id"].max()
    train_part, held = splits["users"]
    assert 0 not in set(held["user_id"]) and len(held) == 40  # whole light users, the heavy one never fits
    assert not set(held["user_id"]) & set(train_part["user_id"])
    only_one_user = batch.assign(user_id=7)
    assert len(split_holdout(only_one_user, 0.2, "users")[1]) == 40  # nobody else: each user's newest share
    with pytest.raises(ValueError, match="unknown holdout mode"):
        split_holdout(batch, 0.2, "random")


def test_category_rate_counts_only_the_users_earlier_rows_in_each_category(engine):
    import pandas as pd

    from freshrec.features import CATEGORY_RATE, RATE_PRIOR_WEIGHT, category_rate, item_categories, \
        point_in_time_rates
    from freshrec.sqlfiles import query

    assert item_categories(" Comedy ,Drama, ") == ["Comedy", "Drama"] and item_categories("") == []
    categories = {1: "Drama", 2: "Comedy, Drama", 3: "Horror", 4: ""}
    events = [  # user, item, label, second
        (1, 1, 1, 0), (1, 2, 1, 0), (1, 3, 0, 10), (1, 2, 0, 20), (2, 1, 0, 20), (1, 4, 1, 30), (1, 1, 1, 40),
        (1, 3, None, 50)]  # a row without a valid label counts for nobody
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    with engine.begin() as conn:
        conn.execute(query("insert_items"), {"ids": list(categories), "titles": [f"t{i}" for i in categories],
                                             "descriptions": [""] * 4, "categories": list(categories.values())})
        conn.execute(query("insert_interactions"), {
            "user_ids": [e[0] for e in events], "item_ids": [e[1] for e in events], "event_types": ["click"] * 8,
            "labels": [e[2] for e in events], "dwell_ms": [None] * 8,
            "occurred_at": [(t0 + pd.Timedelta(seconds=e[3])).to_pydatetime() for e in events]})
        frame = pd.read_sql("SELECT id, user_id, item_id, occurred_at FROM interactions ORDER BY id", conn)
    got = point_in_time_rates(engine, frame)

    def expected(row) -> float:  # the definition, by brute force over the events
        earlier = [e for e in events if e[0] == row.user_id and e[3] < events[row.Index][3] and e[2] is not None]
        w = RATE_PRIOR_WEIGHT
        overall = (sum(e[2] for e in earlier) + 0.5 * w) / (len(earlier) + w)
        per_category = [(len(hits), sum(e[2] for e in hits)) for c in item_categories(categories[row.item_id])
                        for hits in [[e for e in earlier if c in item_categories(categories[e[1]])]]]
        return category_rate(overall, per_category)

    np.testing.assert_allclose(got[CATEGORY_RATE], [expected(r) for r in frame.itertuples()])
    assert got[CATEGORY_RATE].iloc[1] == 0.5  # the same second as the only earlier row: nothing seen yet
    assert got[CATEGORY_RATE].iloc[5] == got["user_rate"].iloc[5]  # an item without categories
    # dramas: two liked of three before, and a horror film disliked: this drama row sits above the user's average
    assert got[CATEGORY_RATE].iloc[6] > got["user_rate"].iloc[6]
    assert got[CATEGORY_RATE].iloc[7] < got["user_rate"].iloc[7]  # and the horror row below it


def test_recent_rate_counts_the_users_last_rows_strictly_before_ties_broken_by_id(engine):
    import pandas as pd

    from freshrec.features import (RECENT_EVENTS, RECENT_RATE, SESSION_EVENTS, SESSION_RATE, point_in_time_rates,
                                   shrunk_rate)
    from freshrec.sqlfiles import query

    assert RECENT_EVENTS == 10  # the events below are laid out for it
    # user 1: 12 dislikes, then 3 likes in one second, then a row after them; user 2 interleaved, all likes
    events = ([(1, 0, s) for s in range(12)] + [(2, 1, 5), (2, 1, 6)] + [(1, 1, 20)] * 3 + [(1, None, 25)]
              + [(1, 0, 30), (2, 1, 30)])
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    with engine.begin() as conn:
        conn.execute(query("insert_items"), {"ids": [1], "titles": ["t"], "descriptions": [""], "categories": [""]})
        conn.execute(query("insert_interactions"), {
            "user_ids": [e[0] for e in events], "item_ids": [1] * len(events), "event_types": ["click"] * len(events),
            "labels": [e[1] for e in events], "dwell_ms": [None] * len(events),
            "occurred_at": [(t0 + pd.Timedelta(seconds=e[2])).to_pydatetime() for e in events]})
        frame = pd.read_sql("SELECT id, user_id, item_id, occurred_at FROM interactions ORDER BY id", conn)
    got = point_in_time_rates(engine, frame, recent=True, session=True)

    def expected(i: int, last: int = RECENT_EVENTS) -> float:  # by brute force: last labelled rows strictly earlier
        user, _, second = events[i]
        earlier = [e[1] for j, e in enumerate(events) if e[0] == user and e[2] < second and e[1] is not None]
        latest = earlier[-last:]
        return shrunk_rate(sum(latest), len(latest), got["user_rate"].iloc[i])

    np.testing.assert_allclose(got[RECENT_RATE], [expected(i) for i in range(len(events))])
    np.testing.assert_allclose(got[SESSION_RATE], [expected(i, SESSION_EVENTS) for i in range(len(events))])
    assert got[SESSION_RATE].iloc[18] > got[RECENT_RATE].iloc[18]  # the three likes are all of its session
    assert got[RECENT_RATE].iloc[0] == got["user_rate"].iloc[0] == 0.5  # nothing before: the overall rate
    # the likes of one second do not see each other: each sees the 10 newest dislikes only, below the overall rate
    assert got[RECENT_RATE].iloc[14] == got[RECENT_RATE].iloc[16] < got["user_rate"].iloc[14]
    # the row after them sees the three likes (3 of its last 10): its recent rate rose more than the overall one
    assert got[RECENT_RATE].iloc[18] - got[RECENT_RATE].iloc[14] > got["user_rate"].iloc[18] - got["user_rate"].iloc[14]
    without = point_in_time_rates(engine, frame)  # a model that does not read it: the overall rate, unqueried
    assert (without[RECENT_RATE] == without["user_rate"]).all()
    assert (without[SESSION_RATE] == without["user_rate"]).all()


def test_item_quality_averages_each_earlier_items_rate_at_its_own_time(engine):
    import pandas as pd
    import sqlalchemy as sa

    from freshrec.features import ITEM_QUALITY, item_quality, point_in_time_rates, shrunk_rate
    from freshrec.sqlfiles import query

    # (user, item, label, second): item 1 is liked by users 2 and 3 before user 1 meets it, item 2 disliked; two
    # rows of item 2 at one instant; one row of user 3 is about to be quarantined (the cycle's exclude_ids), one
    # has no label
    events = [(2, 1, 1, 0), (3, 1, 1, 1), (2, 2, 0, 2), (3, 2, 0, 3), (3, 2, 1, 3), (1, 1, 1, 5), (1, 2, 0, 6),
              (3, 1, 0, 7), (1, 1, None, 8), (1, 2, 1, 9), (3, 2, 1, 10)]
    bad = 7  # index of the quarantined row
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    with engine.begin() as conn:
        conn.execute(query("insert_items"), {"ids": [1, 2], "titles": ["a", "b"], "descriptions": ["", ""],
                                             "categories": ["", ""]})
        conn.execute(query("insert_interactions"), {
            "user_ids": [e[0] for e in events], "item_ids": [e[1] for e in events],
            "event_types": ["click"] * len(events), "labels": [e[2] for e in events],
            "dwell_ms": [None] * len(events),
            "occurred_at": [(t0 + pd.Timedelta(seconds=e[3])).to_pydatetime() for e in events]})
        frame = pd.read_sql("SELECT id, user_id, item_id, occurred_at FROM interactions ORDER BY id", conn)
    kept = [i for i in range(len(events)) if i != bad]

    def rate_at(j: int) -> float:  # the item's labelled clean rows strictly before row j
        earlier = [events[k][2] for k in kept if events[k][1] == events[j][1] and events[k][3] < events[j][3]
                   and events[k][2] is not None]
        return shrunk_rate(sum(earlier), len(earlier), 0.5)

    def expected(i: int) -> float:  # the user's labelled clean rows strictly before row i, each at its own time
        met = [rate_at(j) for j in kept if events[j][0] == events[i][0] and events[j][3] < events[i][3]
               and events[j][2] is not None]
        return float(item_quality(sum(met), len(met)))

    bad_id = [int(frame["id"].iloc[bad])]
    got = point_in_time_rates(engine, frame.iloc[kept], exclude_ids=bad_id, quality=True)
    np.testing.assert_allclose(got[ITEM_QUALITY], [expected(i) for i in kept])
    assert got[ITEM_QUALITY].iloc[0] == 0.5  # nothing met yet: neutral
    # user 1 at second 9 met item 1 after two likes, item 2 after two dislikes and a like (the unlabelled row: no)
    assert got[ITEM_QUALITY].iloc[kept.index(9)] == pytest.approx(item_quality(7 / 12 + 6 / 13, 2))
    with engine.connect() as conn:  # every labelled clean row before the frame's last instant was logged once
        logged = conn.execute(sa.text("SELECT count(*) FROM item_rate_log")).scalar()
    assert logged == sum(1 for k in kept if events[k][2] is not None and events[k][3] < 10)
    assert point_in_time_rates(engine, frame.iloc[kept], exclude_ids=bad_id)[ITEM_QUALITY].eq(0.5).all()  # unread


def _stored_rows(engine):
    import pandas as pd
    import sqlalchemy as sa

    with engine.connect() as conn:
        return pd.read_sql(sa.text("SELECT id, user_id, item_id, event_type, label, dwell_ms, occurred_at "
                                   "FROM interactions ORDER BY id"), conn)


def test_side_features_are_the_same_in_training_and_in_the_benchs_pandas_copies(engine, tmp_path):
    from bench.baselines import UserGenreRecentItemRatesPerEvent
    from bench.evaluate import with_genres
    from bench.replay_sweep import movielens_stream
    from freshrec.features import (CATEGORY_RATE, ITEM_QUALITY, RECENT_EVENTS, RECENT_RATE, SESSION_RATE,
                                   SIDE_COLUMNS, build_examples)
    from freshrec.movielens import load_movielens

    movielens_folder(tmp_path, np.random.default_rng(3))
    load_movielens(engine, tmp_path)
    training = build_examples(engine, _stored_rows(engine), history_len=5, categories=True, recent=True,
                              quality=True, session=True)
    columns = [*SIDE_COLUMNS, CATEGORY_RATE, RECENT_RATE]
    assert training[CATEGORY_RATE].nunique() > 10 and (training["user_log_n"] > 0).mean() > 0.9  # not trivial
    # the recent rate is not the overall one: users with more than RECENT_EVENTS earlier ratings
    assert (np.exp(training["user_log_n"]) - 1 > RECENT_EVENTS).any()
    assert (np.abs(training[RECENT_RATE] - training["user_rate"]) > 0.01).mean() > 0.2

    # bench.priors / bench.replay_sweep: the same ratings from the files, counted with pandas (same row order)
    sweep = movielens_stream(tmp_path, history_len=5).rename(columns={"user_genre_rate": CATEGORY_RATE})
    np.testing.assert_allclose(sweep[columns].to_numpy(float), training[columns].to_numpy(float), atol=1e-9)
    assert sweep["user_text"].tolist() == training["user_text"].tolist()
    assert sweep["history_item_ids"].tolist() == training["history_item_ids"].tolist()

    # bench.evaluate's per-event contenders: their counts, learned event by event from the stored rows
    contender = UserGenreRecentItemRatesPerEvent()
    contender.score(with_genres(engine, training))
    columns += [ITEM_QUALITY, SESSION_RATE]  # the item quality and the session rate too: neither is trivial
    assert training[ITEM_QUALITY].nunique() > 10 and not np.allclose(training[ITEM_QUALITY], training["user_rate"])
    assert not np.allclose(training[SESSION_RATE], training[RECENT_RATE])
    np.testing.assert_allclose(contender.last_inputs[columns].to_numpy(float), training[columns].to_numpy(float),
                               atol=1e-9)


def test_quarantined_rows_feed_no_like_rate(engine, tmp_path):
    import pandas as pd

    from freshrec import cycles, steps
    from freshrec.features import build_examples
    from freshrec.movielens import load_movielens
    from freshrec.settings import load_settings

    pd.DataFrame({"movieId": [1, 2], "title": ["A (1990)", "B (1991)"], "genres": ["Drama", "Drama"]}
                 ).to_csv(tmp_path / "movies.csv", index=False)
    pd.DataFrame({"userId": [1, 1, 1], "movieId": [1, 1, 2], "rating": [5.0, 5.0, 1.0],  # a row sent twice
                  "timestamp": [900_000_100, 900_000_100, 900_000_200]}).to_csv(tmp_path / "ratings.csv", index=False)
    load_movielens(engine, tmp_path)
    settings = load_settings()
    pulled = steps.pull(settings, engine)
    validated = steps.validate(settings, engine, pulled)
    cycles.commit_batch(engine, steps.begin(settings, engine), pulled, validated)
    assert validated.reason_counts == {"duplicate": 1} and len(validated.clean) == 2
    later = build_examples(engine, _stored_rows(engine).tail(1), history_len=5)
    assert later["user_text"].iloc[0] == "liked: A (1990)"  # the history has the like once
    assert later["user_log_n"].iloc[0] == pytest.approx(np.log1p(1))  # so should the user's counts


def test_texts_name_the_category_once_and_rates_shrink_towards_a_half():
    assert item_text("Toy Story", "Animation", "Animation, Children") == "Toy Story | Animation, Children"
    assert item_text("football guide", "sports", "a guide for fans") == "football guide | sports | a guide for fans"
    assert item_text("a title", "", "") == "a title"
    assert user_text([]) == NO_HISTORY
    assert user_text(["B (1991)", "A (1990)"]) == "liked: B (1991); A (1990)"
    side = side_features([0, 10], [0, 10], [10, 0], [0, 0])
    # no events: exactly neutral; ten likes of ten: (10 + 10 * 0.5) / (10 + 10); ten dislikes: 5 / 20
    assert side["user_rate"].tolist() == [0.5, 0.75] and side["item_rate"].tolist() == [0.25, 0.5]
    assert side["user_log_n"].tolist() == [0.0, pytest.approx(np.log(11))]
