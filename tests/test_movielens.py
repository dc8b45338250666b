"""freshrec.movielens: ml-latest-small files (written here, never the shared data) become items and a stream in
timestamp order."""

import pandas as pd
import pytest
import sqlalchemy as sa

from freshrec import movielens
from freshrec.errors import FreshrecError


def _write_movielens(folder):
    folder.mkdir()
    (folder / "movies.csv").write_bytes(
        b'movieId,title,genres\r\n1,Toy Story (1995),Adventure|Animation|Children\r\n'
        b'2,Jumanji (1995),Adventure|Children|Fantasy\r\n3,"Grumpier Old Men, The (1995)",Comedy|Romance\r\n')
    (folder / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\r\n"
        b"1,1,4.0,964982703\r\n1,3,4.5,964981247\r\n2,2,2.5,964982224\r\n2,1,3.5,964983815\r\n"
        b"3,3,5.0,964981247\r\n")


def test_movielens_loader(engine, tmp_path):
    folder = tmp_path / "ml"
    _write_movielens(folder)
    result = movielens.load_movielens(engine, folder)
    assert (result.items_created, result.events_inserted) == (3, 5)
    with engine.connect() as conn:
        items = conn.execute(sa.text("SELECT id, title, description, category FROM items ORDER BY id")).all()
        events = pd.read_sql("SELECT user_id, item_id, event_type, label, occurred_at FROM interactions ORDER BY id",
                             conn)
    assert items[2] == (3, "Grumpier Old Men, The (1995)", "Comedy, Romance", "Comedy, Romance")
    assert items[0].description == "Adventure, Animation, Children"
    # timestamp order, ties broken by user then movie
    assert list(zip(events.user_id, events.item_id)) == [(1, 3), (3, 3), (2, 2), (1, 1), (2, 1)]
    assert events.label.tolist() == [1, 1, 0, 1, 0]
    assert set(events.event_type) == {"rating"}
    assert events.occurred_at.iloc[0] == pd.Timestamp(964981247, unit="s", tz="UTC")
    # loading the catalogue again is idempotent
    assert movielens.load_movielens(engine, folder).items_created == 0


def test_movielens_bad_folder(engine, tmp_path):
    with pytest.raises(FreshrecError, match="movies.csv"):
        movielens.load_movielens(engine, tmp_path)


def test_ratings_are_read_in_time_order_and_every_genre_becomes_a_category(tmp_path):
    folder = tmp_path / "ml"
    _write_movielens(folder)
    movies, ratings = movielens.read_movielens(folder)
    # timestamp order, ties broken by user then movie
    assert list(zip(ratings.userId, ratings.movieId)) == [(1, 3), (3, 3), (2, 2), (1, 1), (2, 1)]
    earliest = movielens.read_movielens(folder, limit=2)[1]
    assert list(zip(earliest.userId, earliest.movieId)) == [(1, 3), (3, 3)]  # a limit keeps the earliest
    items = movielens.movie_items(movies)
    assert items["ids"] == [1, 2, 3] and items["titles"][2] == "Grumpier Old Men, The (1995)"
    assert items["categories"] == items["descriptions"] == ["Adventure, Animation, Children",
                                                            "Adventure, Children, Fantasy", "Comedy, Romance"]


def test_files_that_are_not_movielens_are_one_sentence(tmp_path):
    folder = tmp_path / "ml"
    _write_movielens(folder)
    (folder / "ratings.csv").write_text("userId,movieId,stars,timestamp\n1,1,4.0,964982703\n")
    with pytest.raises(FreshrecError, match=r"lacks the MovieLens column\(s\) \['rating'\]"):
        movielens.read_movielens(folder)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,four,964982703\n")
    with pytest.raises(FreshrecError, match="does not look like MovieLens ml-latest-small"):
        movielens.read_movielens(folder)
