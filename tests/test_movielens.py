"""The embedded default: MovieLens titles, enrichment and ratings."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys_utils.data.movielens import (
    enrich_titles,
    load_ggplot2movies,
    load_movielens,
    movielens_ratings,
    movielens_titles,
)


def _ml() -> pd.DataFrame:
    """A few rows in the dslabs/movielens layout."""
    return pd.DataFrame({
        "rownames": [1, 2, 3, 4, 5],
        "movieId": [2571, 1, 2571, 99, 1],
        "title": ["Matrix, The", "Toy Story", "Matrix, The", None, "Toy Story"],
        "year": [1999.0, 1995.0, 1999.0, None, 1995.0],
        "genres": ["Action|Sci-Fi", "Animation|Children", "Action|Sci-Fi",
                   "(no genres listed)", "Animation|Children"],
        "userId": [1, 1, 2, 2, 2],
        "rating": [4.5, 3.0, 5.0, 2.0, 9.0],
        "timestamp": [1000, 1001, 1002, 1003, 1004],
    })


def _gg() -> pd.DataFrame:
    return pd.DataFrame({"title": ["Matrix, The", "Matrix, The", "Toy Story"],
                         "year": [1999, 1999, 1994], "length": [136, 999, 81],
                         "mpaa": ["R", None, "G"], "votes": [10_000, 5, 100]})


def test_titles_schema_and_ids() -> None:
    titles, rejected, account = movielens_titles(_ml())
    assert titles["id"].tolist() == ["ml1", "ml2571"]  # movieId order
    assert (titles["platform"] == "movielens").all() and (titles["type"] == "Movie").all()
    assert titles["title_norm"].tolist() == ["toy story", "the matrix"]
    assert titles["genres"].tolist() == ["Animation, Children", "Action, Sci-Fi"]
    assert str(titles["release_year"].dtype) == "Int16"
    assert rejected[["line", "reason"]].values.tolist() == [[5, "missing title"]]
    assert (account.read, account.kept, account.rejected) == (3, 2, 1)


def test_enrichment_matches_title_and_year_only() -> None:
    titles, _, _ = movielens_titles(_ml())
    enriched, info = enrich_titles(titles, _gg())
    by_id = enriched.set_index("id")
    # The Matrix matches (the most-voted duplicate wins); Toy Story's year differs.
    assert (by_id.loc["ml2571", "duration_int"], by_id.loc["ml2571", "rating"]) == (136, "R")
    assert by_id.loc["ml2571", "duration_type"] == "min"
    assert pd.isna(by_id.loc["ml1", "duration_int"]) and pd.isna(by_id.loc["ml1", "rating"])
    assert (info.n_titles, info.n_matched, info.n_with_mpaa) == (2, 1, 1)
    assert info.match_rate == pytest.approx(0.5)


def test_ratings_validated_with_the_common_rules() -> None:
    kept, rejected, account = movielens_ratings(_ml(), known_items={"ml1", "ml2571"})
    assert kept["item_id"].tolist() == ["ml2571", "ml1", "ml2571"]
    assert kept["line"].tolist() == [2, 3, 4]  # rownames + 1: the header is line 1
    assert rejected[["line", "reason"]].values.tolist() == [[5, "unknown movieId"],
                                                            [6, "score outside 0.5-5"]]
    assert account.adds_up and (account.read, account.kept) == (5, 3)


def test_ratings_mapped_to_catalog_items() -> None:
    kept, rejected, account = movielens_ratings(_ml(), item_map={2571: "ns7"})
    assert kept["item_id"].tolist() == ["ns7", "ns7"]
    assert rejected["reason"].value_counts().to_dict() == {
        "movie not linked to a catalog title": 3}
    assert account.adds_up and account.rejected == 3


def test_real_embedded_data() -> None:
    ml = load_movielens()
    assert len(ml) == 100_004 and ml["userId"].nunique() == 671
    titles, _, _ = movielens_titles(ml)
    enriched, info = enrich_titles(titles, load_ggplot2movies())
    assert len(titles) == 9_061  # 9,066 movies, 5 without a title
    assert 0.5 < info.match_rate < 0.7
    assert enriched.set_index("title").loc["Matrix, The", "duration_int"] == 136
