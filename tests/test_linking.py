"""Title normalization and MovieLens ↔ catalog linking."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys_utils.data.linking import (
    assign_item_ids,
    link_movielens,
    normalize_title,
    normalize_titles,
    same_work_item_ids,
    title_variants,
)


@pytest.mark.parametrize(("title", "expected"), [
    ("Matrix, The", "the matrix"),
    ("The Matrix", "the matrix"),
    ("THE MATRIX!", "the matrix"),
    ("Amélie", "amelie"),
    ("Schindler's List", "schindlers list"),
    ("Dumb & Dumber", "dumb and dumber"),
    ("Nightmare on Elm Street 3: Dream Warriors, A", "a nightmare on elm street 3 dream warriors"),
    ("Good, the Bad and the Ugly, The", "the good the bad and the ugly"),
    ("Lord of the Rings: The Two Towers, The", "the lord of the rings the two towers"),
    ("Auberge espagnole, L'", "lauberge espagnole"),
    ("Toy Story (1995)", "toy story"),
    ("Seven (a.k.a. Se7en)", "seven"),
    ("Me, Myself and I", "me myself and i"),
    ("Star Wars: Episode IV - A New Hope", "star wars episode iv a new hope"),
    ("千と千尋の神隠し", "千と千尋の神隠し"),
    ("", ""),
    (None, ""),
])
def test_normalize_title(title: str | None, expected: str) -> None:
    assert normalize_title(title) == expected


def test_normalize_titles_keeps_missing_missing() -> None:
    out = normalize_titles(pd.Series(["Matrix, The", None, "!!!"]))
    assert out.iloc[0] == "the matrix" and out.iloc[1:].isna().all()


def test_title_variants_main_then_alternatives() -> None:
    assert title_variants("Léon: The Professional (a.k.a. The Professional) (Léon)") == [
        "leon the professional", "the professional", "leon", "leon the professional leon"]
    assert title_variants("Name of the Rose, The (Name der Rose, Der)")[:2] == [
        "the name of the rose", "der name der rose"]
    assert title_variants(None) == []


def _catalog() -> pd.DataFrame:
    rows = [  # (id, title, year) in (platform, line) order
        ("as1", "The Matrix", 1999), ("as2", "Se7en", 1995), ("hs1", "Hamlet", 1990),
        ("ns1", "The Matrix", 1999), ("ns2", "Hamlet", 1996), ("ns3", "Unrelated", 2000)]
    df = pd.DataFrame(rows, columns=["id", "title", "release_year"])
    df["title_norm"] = normalize_titles(df["title"])
    return df


def _movies() -> pd.DataFrame:
    return pd.DataFrame({"movieId": [2571, 47, 1411, 7, 8],
                         "title": ["Matrix, The", "Seven (a.k.a. Se7en)", "Hamlet", "Hamlet",
                                   "No Year"],
                         "year": [1999, 1995, 1996, 1948, None]})


def test_link_by_title_and_year() -> None:
    result = link_movielens(_catalog(), _movies())
    assert result.movie_to_item == {2571: "as1", 47: "as2", 1411: "ns2"}
    assert result.n_movies == 4  # the movie without a year cannot be linked
    assert result.n_linked_movies == 3 and result.n_linked_titles == 4
    assert result.match_rate == pytest.approx(0.75)
    # The Matrix on two platforms: the netflix copy shares the amazon copy's item id.
    assert result.item_ids.tolist() == ["as1", "as2", "hs1", "as1", "ns2", "ns3"]


def test_a_catalog_row_links_to_one_movie_only() -> None:
    movies = pd.DataFrame({"movieId": [1, 2], "title": ["Hamlet", "Hamlet (Hamlet)"],
                           "year": [1990, 1990]})
    result = link_movielens(_catalog(), movies)
    assert result.movie_to_item == {1: "hs1"}


def test_assign_item_ids_uses_first_copy() -> None:
    titles = pd.DataFrame({"id": ["a1", "b1", "c1", "d1"]})
    movie = pd.Series([5.0, None, 5.0, 6.0])
    assert assign_item_ids(titles, movie).tolist() == ["a1", "b1", "a1", "d1"]


def test_same_work_copies_share_an_item_id_unless_their_directors_differ():
    titles = pd.DataFrame({
        "id": ["as1", "as2", "as3", "hs4", "ns1", "ns2", "ns3", "ns4"],
        "title_norm": ["evan almighty", "rangoon", "", "heal", "evan almighty", "rangoon", "",
                       "heal"],
        "release_year": [2007, 2017, 2000, 2017, 2007, 2017, 2000, 2017],
        "type": "Movie",
        # one side without a director still merges; spellings of one name merge; two
        # unrelated directors (two films called Rangoon, 2017) do not
        "director": ["Tom Shadyac", "Rajkumar Periasamy", None, "Kelly Noonan Gores", None,
                     "Vishal Bhardwaj", None, "Kelly Noonan"],
    })
    assert same_work_item_ids(titles).tolist() == [
        "as1", "as2", "as3", "hs4", "as1", "ns2", "ns3", "hs4"]  # an empty title never merges
