"""Platform analytics (the first version's API questions) on a small hand-made analytics table."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recsys_utils.errors import DataError, UnknownFilterError
from recsys_utils.explore import analytics as an


def _table() -> pd.DataFrame:
    """Seven titles on two platforms; every expected answer below is counted by hand."""
    rows = [
        # item_id, platform, type, title, cast, country, year, rating, dur, dtype, mean, n
        ("n1", "netflix", "Movie", "Alpha", "Ann Lee, Bob Roy", "United States, India",
         2020, "TV-MA", 120, "min", 4.5, 10),
        ("n2", "netflix", "Movie", "Beta", "Bob Roy, Bob Roy", "India",
         2020, "PG-13", 150, "min", 3.0, 4),
        ("n3", "netflix", "TV Show", "Gamma", "Ann Lee", "United States",
         2020, "TV-MA", 3, "season", 4.2, 2),
        ("n4", "netflix", "Movie", "Delta", None, None,
         2019, None, 150, "min", None, 0),
        ("a1", "amazon_prime", "Movie", "Epsilon", "Cy Dee", "Canada",
         2020, "G", 200, "min", 4.0, 1),
        ("a2", "amazon_prime", "Movie", "Zeta", "Cy Dee, Ann Lee", "Canada, United States",
         2018, "G", 90, "min", 4.9, 7),
        ("a3", "amazon_prime", "TV Show", "Eta", None, "Canada",
         2020, "TV-MA", 5, "season", None, 0),
    ]
    cols = ["item_id", "platform", "type", "title", "cast", "country", "release_year",
            "rating", "duration_int", "duration_type", "mean_score", "n_ratings"]
    df = pd.DataFrame(rows, columns=cols)
    df["release_year"] = df["release_year"].astype("Int16")
    df["duration_int"] = df["duration_int"].astype("Int32")
    df["mean_score"] = df["mean_score"].astype("float32")
    df["n_ratings"] = df["n_ratings"].astype("int32")
    return df


@pytest.fixture
def table() -> pd.DataFrame:
    return _table()


# ---------------------------------------------------------------- longest title


def test_longest_title_breaks_ties_by_title(table):
    # Beta and Delta are both 150 min on netflix (any year): Beta wins alphabetically.
    ans = an.longest_title(table, "netflix", None, "min")
    assert ans.found and ans.title == "Beta" and ans.duration_int == 150
    assert ans.item_id == "n2" and ans.title_platform == "netflix"


def test_longest_title_filters_year_and_platform(table):
    ans = an.longest_title(table, "netflix", 2019, "min")
    assert (ans.title, ans.release_year) == ("Delta", 2019)
    assert an.longest_title(table, None, 2020, "min").title == "Epsilon"


def test_longest_title_seasons(table):
    ans = an.longest_title(table, None, 2020, "season")
    assert ans.title == "Eta" and ans.duration_int == 5 and ans.type == "TV Show"


def test_longest_title_empty_is_explicit(table):
    ans = an.longest_title(table, "amazon_prime", 1990, "min")
    assert ans.found is False and ans.title is None and ans.duration_int is None
    assert "1990" in ans.message


def test_longest_title_on_empty_slice_of_kind(table):
    # A movie measured in seasons does not exist here: an empty answer, not an IndexError.
    ans = an.longest_title(table, "netflix", 2020, "season", kind="Movie")
    assert not ans.found


def test_filters_are_matched_forgivingly(table):
    ans = an.longest_title(table, " Amazon Prime ", 2018, "MIN")
    assert ans.platform == "amazon_prime" and ans.duration_type == "min" and ans.title == "Zeta"
    assert an.longest_title(table, "netflix", 2020, "Seasons").title == "Gamma"


def test_unknown_platform_lists_valid_ones(table):
    with pytest.raises(UnknownFilterError) as err:
        an.longest_title(table, "hbo", 2020, "min")
    assert err.value.field == "platform" and err.value.value == "hbo"
    assert err.value.valid == ["amazon_prime", "netflix"]
    assert isinstance(err.value, ValueError)
    assert "netflix" in str(err.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: an.count_titles_above_score(t, "disney", 2020, 3.0),
        lambda t: an.titles_per_platform(t, platform="disney"),
        lambda t: an.top_actor(t, "disney", 2020),
        lambda t: an.productions_per_country(t, platform="disney"),
        lambda t: an.titles_per_maturity_rating(t, platform="disney"),
    ],
)
def test_every_question_rejects_an_unknown_platform(table, call):
    with pytest.raises(UnknownFilterError, match="disney"):
        call(table)


def test_unknown_duration_type_and_kind(table):
    with pytest.raises(UnknownFilterError) as err:
        an.longest_title(table, "netflix", 2020, "hours")
    assert err.value.field == "duration_type" and err.value.valid == ["min", "season"]
    with pytest.raises(UnknownFilterError) as err:
        an.titles_per_platform(table, kind="Documentary")
    assert err.value.valid == ["Movie", "TV Show"]


def test_bad_year_is_a_value_error(table):
    with pytest.raises(ValueError, match="year"):
        an.longest_title(table, "netflix", 2020.5, "min")


def test_missing_column_is_a_data_error(table):
    with pytest.raises(DataError, match="cast"):
        an.top_actor(table.drop(columns="cast"), "netflix", 2020)


# ---------------------------------------------------------------- scores


def test_count_above_score_is_strict_and_skips_unrated(table):
    # netflix 2020: Alpha 4.5, Beta 3.0, Gamma 4.2 -> above 4.2 strictly: Alpha only.
    ans = an.count_titles_above_score(table, "netflix", 2020, 4.2)
    assert (ans.count, ans.n_titles, ans.n_rated, ans.found) == (1, 3, 3, True)
    ans = an.count_titles_above_score(table, "amazon_prime", 2020, 3.5)
    # Epsilon (4.0) counts; Eta is unrated and never counts.
    assert (ans.count, ans.n_titles, ans.n_rated) == (1, 2, 1)


def test_count_above_score_kind_filter(table):
    assert an.count_titles_above_score(table, "netflix", 2020, 4.0, kind="Movie").count == 1
    # Alpha 4.5, Gamma 4.2, Zeta 4.9; Epsilon's 4.0 is not strictly above.
    assert an.count_titles_above_score(table, None, None, 4.0).count == 3


def test_count_above_score_empty(table):
    ans = an.count_titles_above_score(table, "netflix", 1990, 1.0)
    assert (ans.count, ans.n_titles, ans.found) == (0, 0, False)


def test_count_above_score_rejects_nan(table):
    with pytest.raises(ValueError, match="min_score"):
        an.count_titles_above_score(table, "netflix", 2020, float("nan"))


# ---------------------------------------------------------------- platform counts


def test_titles_per_platform(table):
    ans = an.titles_per_platform(table)
    assert ans.counts == {"netflix": 4, "amazon_prime": 3} and ans.total == 7
    assert list(ans.counts) == ["netflix", "amazon_prime"]  # largest first
    shows = an.titles_per_platform(table, kind="tv show")
    assert shows.counts == {"amazon_prime": 1, "netflix": 1}  # tie: alphabetical


def test_titles_per_platform_single_platform_zero(table):
    ans = an.titles_per_platform(table[table["type"] == "Movie"], kind="TV Show", platform="netflix")
    assert ans.counts == {"netflix": 0} and ans.found is False


def test_count_table_to_frame(table):
    frame = an.titles_per_platform(table).to_frame()
    assert list(frame.columns) == ["platform", "n_titles"]
    assert frame["n_titles"].tolist() == [4, 3]


# ---------------------------------------------------------------- actors


def test_top_actor_counts_each_title_once(table):
    # netflix, any year: Ann Lee in n1, n3 (2); Bob Roy in n1, n2 (2, listed twice in n2).
    ans = an.top_actor(table, "netflix", None)
    assert ans.found and ans.actor == "Ann Lee" and ans.n_titles == 2
    assert ans.tied_with == ["Bob Roy"]
    assert ans.n_titles_with_cast == 3  # Delta has no cast


def test_top_actor_year_filter(table):
    ans = an.top_actor(table, "amazon_prime", 2018)
    assert (ans.actor, ans.n_titles) == ("Ann Lee", 1)
    assert ans.tied_with == ["Cy Dee"]
    assert an.top_actor(table, None, None).actor == "Ann Lee"  # 3 titles across platforms


def test_top_actor_empty(table):
    ans = an.top_actor(table, "netflix", 2019)  # Delta: no cast
    assert ans.found is False and ans.actor is None and ans.n_titles == 0


def test_top_actor_ignores_duplicate_index(table):
    doubled = pd.concat([table.iloc[:2], table.iloc[:2]])  # index 0,1,0,1
    ans = an.top_actor(doubled, "netflix", 2020)
    assert (ans.actor, ans.n_titles) == ("Bob Roy", 4)


# ---------------------------------------------------------------- countries


def test_productions_per_country_explodes_lists(table):
    ans = an.productions_per_country(table, "Movie", 2020)
    # Movies 2020: Alpha (US, India), Beta (India), Epsilon (Canada).
    assert ans.counts == {"India": 2, "Canada": 1, "United States": 1}
    assert ans.total == 4 and ans.n_missing == 0


def test_productions_per_country_one_country_and_top_n(table):
    ans = an.productions_per_country(table, None, None, country="canada")
    assert ans.counts == {"Canada": 3}
    # Canada 3 and United States 3 tie; India 2. Ties go alphabetically.
    top = an.productions_per_country(table, top_n=1)
    assert top.counts == {"Canada": 3} and top.total == 8  # total sums every country


def test_productions_per_country_empty(table):
    ans = an.productions_per_country(table, "TV Show", 2018)
    assert ans.found is False and ans.counts == {} and ans.total == 0
    ans = an.productions_per_country(table, country="Atlantis")
    assert ans.found is False and ans.counts == {}


# ---------------------------------------------------------------- maturity ratings


def test_titles_per_maturity_rating(table):
    ans = an.titles_per_maturity_rating(table)
    assert ans.counts == {"TV-MA": 3, "G": 2, "PG-13": 1} and ans.n_missing == 1
    one = an.titles_per_maturity_rating(table, "tv-ma", platform="netflix")
    assert one.counts == {"TV-MA": 2} and one.filters["rating"] == "TV-MA"


def test_known_rating_absent_from_platform_is_zero(table):
    ans = an.titles_per_maturity_rating(table, "G", platform="netflix")
    assert ans.counts == {"G": 0} and ans.found is False


def test_unknown_rating_lists_valid_ones(table):
    with pytest.raises(UnknownFilterError) as err:
        an.titles_per_maturity_rating(table, "X")
    assert err.value.field == "rating" and err.value.valid == ["G", "PG-13", "TV-MA"]


# ---------------------------------------------------------------- shapes


def test_results_are_json_friendly(table):
    answers = [
        an.longest_title(table, "netflix", 2020, "min"),
        an.count_titles_above_score(table, "netflix", 2020, 4.0),
        an.titles_per_platform(table),
        an.top_actor(table, "netflix", 2020),
        an.productions_per_country(table, "Movie", 2020),
        an.titles_per_maturity_rating(table),
    ]
    for ans in answers:
        payload = ans.to_dict()
        assert json.loads(json.dumps(payload)) == payload  # plain types only


def test_empty_table_gives_empty_answers():
    empty = _table().iloc[0:0]
    assert an.titles_per_platform(empty).counts == {}
    assert an.productions_per_country(empty).found is False
    assert an.longest_title(empty).found is False
    with pytest.raises(UnknownFilterError) as err:
        an.top_actor(empty, "netflix")
    assert err.value.valid == []


def test_answer_seed_questions_table(table):
    answers = an.answer_seed_questions(table, min_score=4.0)
    assert list(answers.columns) == ["question", "answer"] and len(answers) == 6
    # default query: largest platform (netflix) and its most common year (2020)
    assert an.default_query(table) == ("netflix", 2020)
    assert "Beta (150 minutes)" in answers.loc[0, "answer"]
    assert answers.loc[2, "answer"] == "netflix: 4, amazon_prime: 3"


def test_answer_seed_questions_without_catalog_fields(table):
    bare = table.assign(cast=None, country=None, rating=None)
    answers = an.answer_seed_questions(bare)
    assert answers["answer"].str.startswith("no ").sum() == 3
    assert "no maturity ratings" in answers.loc[5, "answer"]


def test_split_list():
    out = an.split_list(pd.Series(["a, b", None, "c|d", " , e"]))
    assert out.tolist() == ["a", "b", "c", "d", "e"]
    assert out.index.tolist() == [0, 0, 2, 2, 3]


def test_top_actor_skips_placeholder_names(table):
    extra = table.iloc[[0, 0, 0]].assign(cast="1", item_id=["x1", "x2", "x3"])
    ans = an.top_actor(pd.concat([table, extra]), "netflix", 2020)
    assert ans.actor != "1" and ans.actor == "Ann Lee"


def test_default_query_prefers_years_with_rated_titles(table):
    # Nothing rated: the year with the most netflix titles (2020, three of them).
    unrated = table.assign(n_ratings=0)
    assert an.default_query(unrated) == ("netflix", 2020)
    # Only Delta (2019) is rated on netflix: 2019 wins although 2020 has more titles.
    rated_2019 = table.assign(n_ratings=[0, 0, 0, 5, 1, 1, 0])
    assert an.default_query(rated_2019) == ("netflix", 2019)


def test_top_actor_caps_tied_list_but_counts_all_ties():
    cast = [f"Actor {chr(ord('A') + i)}" for i in range(12)]  # 12 actors, one title each
    df = _table().iloc[[0] * 12].assign(cast=cast, item_id=[f"t{i}" for i in range(12)])
    ans = an.top_actor(df, "netflix", 2020)
    assert ans.actor == "Actor A" and ans.n_titles == 1
    assert ans.tied_with == cast[1:11]
    assert "tied with 11 other(s)" in ans.message


def test_messages_use_singular_and_canonical_platform(table):
    assert an.top_actor(table, "amazon_prime", 2020).message == "Cy Dee (1 title)"
    answers = an.answer_seed_questions(table, "Amazon Prime", 2018)
    assert answers.loc[0, "question"] == "Longest movie on amazon_prime released in 2018"
    with pytest.raises(UnknownFilterError):
        an.answer_seed_questions(table, "hbo")
