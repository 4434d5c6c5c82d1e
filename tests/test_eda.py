"""EDA numbers on hand-made tables and the figures' titles/labels (the figure helpers
missing_labels and save_figure are tested in test_plots.py)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from recsys_utils.explore import eda
from recsys_utils.plots import missing_labels, set_style


@pytest.fixture
def ratings() -> pd.DataFrame:
    """3 users x 4 titles, 7 ratings (u1 rates 4 titles, u2 two, u3 one)."""
    rows = [
        (1, "a1", 4.0, "2015-01-03"), (1, "a2", 3.5, "2015-01-20"), (1, "a3", 5.0, "2015-02-01"),
        (1, "a4", 4.0, "2016-06-01"), (2, "a1", 2.0, "2015-02-10"), (2, "a2", 4.0, "2016-06-02"),
        (3, "a1", 4.0, "2016-07-01"),
    ]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "score", "timestamp"])
    return df.astype({"user_id": "int32", "score": "float32", "timestamp": "datetime64[s]"})


@pytest.fixture
def titles() -> pd.DataFrame:
    rows = [
        # item_id, platform, type, title_norm, year, genres, country, rating, dur, dtype
        ("a1", "netflix", "Movie", "heat", 1995, "Crime, Drama", "United States", "R", 170, "min"),
        ("a2", "netflix", "TV Show", "dark", 2017, "Drama|Mystery", "Germany", "TV-MA", 3, "season"),
        ("a3", "hulu", "Movie", "heat", 1995, "Crime", "United States, France", "R", 171, "min"),
        ("a4", "hulu", "Movie", "up", 2009, "Animation", None, None, None, None),
        ("a5", "disney_plus", "Movie", "up", 2009, "Animation, Family", "United States",
         "PG", 96, "min"),
        ("a6", "disney_plus", "Movie", "heat", 1995, "Drama", None, "G", 90, "min"),
    ]
    cols = ["item_id", "platform", "type", "title_norm", "release_year", "genres", "country",
            "rating", "duration_int", "duration_type"]
    df = pd.DataFrame(rows, columns=cols)
    return df.astype({"release_year": "Int16", "duration_int": "Int32"})


@pytest.fixture
def analytics_table(titles, ratings) -> pd.DataFrame:
    agg = ratings.groupby("item_id")["score"].agg(["mean", "size"])
    return titles.assign(
        mean_score=titles["item_id"].map(agg["mean"]).astype("float32"),
        n_ratings=titles["item_id"].map(agg["size"]).fillna(0).astype("int32"),
    )


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ ratings numbers


def test_ratings_distribution(ratings):
    dist = eda.ratings_distribution(ratings)
    assert dist["score"].tolist() == [2.0, 3.5, 4.0, 5.0]
    assert dist["n_ratings"].tolist() == [1, 1, 4, 1]
    assert dist["share"].sum() == pytest.approx(1.0)
    assert dist.loc[dist["score"] == 4.0, "share"].item() == pytest.approx(4 / 7)


def test_activity_and_summary(ratings):
    users = eda.activity_per_user(ratings)
    assert users["user_id"].tolist() == [1, 2, 3] and users["n_ratings"].tolist() == [4, 2, 1]
    items = eda.activity_per_title(ratings)
    assert items["item_id"].tolist() == ["a1", "a2", "a3", "a4"]  # 3, 2, then tie 1, 1 by id
    summary = eda.activity_summary(users)
    assert summary["median"] == 2 and summary["max"] == 4 and summary["p90"] == pytest.approx(3.6)
    # top 10% of 3 users = the single most active user: 4 of 7 ratings
    assert summary["top10_share"] == pytest.approx(4 / 7)


def test_activity_summary_empty():
    summary = eda.activity_summary(pd.DataFrame({"n_ratings": pd.Series([], dtype="int64")}))
    assert summary["n"] == 0 and summary["top10_share"] == 0


def test_sparsity_counts_duplicate_pairs_once(ratings):
    sp = eda.sparsity(ratings)
    assert (sp["n_users"], sp["n_items"], sp["n_ratings"]) == (3, 4, 7)
    assert sp["density"] == pytest.approx(7 / 12) and sp["sparsity"] == pytest.approx(5 / 12)
    doubled = pd.concat([ratings, ratings.iloc[[0]]])
    assert eda.sparsity(doubled)["density"] == pytest.approx(7 / 12)


def test_ratings_over_time(ratings):
    monthly = eda.ratings_over_time(ratings, "M")
    assert monthly["period"].dt.strftime("%Y-%m").tolist() == [
        "2015-01", "2015-02", "2016-06", "2016-07"]
    assert monthly["n_ratings"].tolist() == [2, 2, 2, 1]
    yearly = eda.ratings_over_time(ratings, "Y")
    assert yearly["n_ratings"].tolist() == [4, 3]
    assert yearly["mean_score"].tolist() == pytest.approx([(4 + 3.5 + 5 + 2) / 4, 4.0])


def test_interaction_sample_ranks_and_seed(ratings):
    full = eda.interaction_sample(ratings)
    assert len(full) == 7
    # user 1 is the most active (rank 0), a1 the most rated title (rank 0)
    assert ((full["user_rank"] == 0) & (full["item_rank"] == 0)).sum() == 1
    assert full["user_rank"].max() == 2 and full["item_rank"].max() == 3
    a = eda.interaction_sample(ratings, max_points=3, seed=1)
    b = eda.interaction_sample(ratings, max_points=3, seed=1)
    assert len(a) == 3 and a.equals(b)


def test_popularity_vs_score(analytics_table):
    points = eda.popularity_vs_score(analytics_table)
    assert sorted(points["item_id"]) == ["a1", "a2", "a3", "a4"]  # unrated a5, a6 left out
    a1 = points.set_index("item_id").loc["a1"]
    assert a1["n_ratings"] == 3 and a1["mean_score"] == pytest.approx(10 / 3)
    assert len(eda.popularity_vs_score(analytics_table, max_points=2, seed=0)) == 2


def test_popularity_vs_score_figure_says_what_it_samples(analytics_table):
    full = eda.plot_popularity_vs_score(eda.popularity_vs_score(analytics_table))
    assert "all 4 rated titles" in full.axes[0].get_title()
    sample = eda.popularity_vs_score(analytics_table, max_points=2, seed=0)
    assert sample.attrs["n_rated"] == 4
    fig = eda.plot_popularity_vs_score(sample, seed=3)
    assert "sample of 2 of the 4 rated titles" in fig.axes[0].get_title()
    # jittered (seeded): the points move off their exact values, the same way every time
    xy = fig.axes[0].collections[0].get_offsets()
    again = eda.plot_popularity_vs_score(sample, seed=3).axes[0].collections[0].get_offsets()
    assert (xy == again).all() and not (xy[:, 1] == sample["mean_score"].to_numpy()).all()


# ------------------------------------------------------------------ catalog numbers


def test_titles_per_platform_type(titles):
    out = eda.titles_per_platform_type(titles)
    assert out["platform"].drop_duplicates().tolist()[0] in {"hulu", "netflix", "disney_plus"}
    wide = out.set_index(["platform", "type"])["n_titles"]
    assert wide[("netflix", "TV Show")] == 1 and wide[("hulu", "Movie")] == 2
    assert out["n_titles"].sum() == 6


def test_release_year_counts(titles):
    out = eda.release_year_counts(titles)
    row = out[(out["platform"] == "disney_plus") & (out["release_year"] == 2009)]
    assert row["n_titles"].item() == 1 and out["n_titles"].sum() == 6


def test_durations_and_summary(titles):
    lengths = eda.durations(titles)
    assert len(lengths) == 5  # a4 has no length
    summary = eda.duration_summary(titles).set_index(["platform", "type"])
    assert summary.loc[("netflix", "TV Show"), "median"] == 3
    assert summary.loc[("netflix", "TV Show"), "duration_type"] == "season"
    assert summary.loc[("disney_plus", "Movie"), "max"] == 96


def test_top_genres_explode_and_count_once(titles):
    top = eda.top_genres(titles, top_n=2)
    # Drama: a1, a2, a6 (3); Crime: a1, a3 (2) and Animation: a4, a5 (2) tie -> by name
    assert top["genres"].tolist() == ["Drama", "Animation"]
    assert top["n_titles"].tolist() == [3, 2]
    assert top["share"].tolist() == pytest.approx([3 / 6, 2 / 6])


def test_top_genres_by_platform(titles):
    per = eda.top_genres(titles, top_n=1, by_platform=True)
    assert per["genres"].unique().tolist() == ["Drama"]
    assert dict(zip(per["platform"], per["n_titles"], strict=True)) == {
        "disney_plus": 1, "netflix": 2}


def test_top_countries(titles):
    top = eda.top_countries(titles, top_n=5)
    assert top.iloc[0].tolist()[:2] == ["United States", 3]
    assert set(top["country"]) == {"United States", "Germany", "France"}


def test_maturity_ratings(titles):
    out = eda.maturity_ratings(titles)
    hulu = out[out["platform"] == "hulu"]
    assert hulu["rating"].tolist() == ["R"] and hulu["share"].item() == 1.0  # a4 unrated
    assert out.groupby("platform")["share"].sum().tolist() == pytest.approx([1, 1, 1])


def test_platform_overlap(titles):
    matrix = eda.platform_overlap(titles)
    assert list(matrix.index) == ["disney_plus", "hulu", "netflix"]
    # heat/1995 on all three; up/2009 on hulu and disney_plus
    assert matrix.loc["hulu", "netflix"] == 1 and matrix.loc["disney_plus", "hulu"] == 2
    assert matrix.loc["netflix", "netflix"] == 2
    assert (matrix.to_numpy() == matrix.to_numpy().T).all()
    dist = eda.overlap_distribution(titles)
    assert dict(zip(dist["n_platforms"], dist["n_titles"], strict=True)) == {1: 1, 2: 1, 3: 1}


def test_has_values(titles):
    assert eda.has_values(titles, "country")
    assert not eda.has_values(titles.assign(country=None), "country")
    assert not eda.has_values(titles, "cast")


def test_key_numbers(ratings, titles):
    key = eda.key_numbers(ratings, titles)
    assert key["n_users"] == 3 and key["n_titles"] == 6 and key["n_rated_titles"] == 4
    assert key["n_platforms"] == 3 and key["n_multi_platform_titles"] == 2
    assert key["sparsity"] == pytest.approx(5 / 12)
    assert key["median_ratings_per_user"] == 2 and key["median_ratings_per_title"] == 1.5
    assert (key["first_rating_year"], key["last_rating_year"]) == (2015, 2016)
    assert all(isinstance(v, int | float) for v in key.values())


def test_key_numbers_single_platform(ratings, titles):
    single = titles.assign(platform="movielens")
    assert eda.key_numbers(ratings, single)["n_multi_platform_titles"] == 0


# ------------------------------------------------------------------ figures


def _figures(ratings, titles, analytics_table):
    set_style()
    return {
        "distribution": eda.plot_ratings_distribution(eda.ratings_distribution(ratings)),
        "activity": eda.plot_activity(eda.activity_per_user(ratings),
                                      eda.activity_per_title(ratings)),
        "interactions": eda.plot_interactions(eda.interaction_sample(ratings)),
        "time": eda.plot_ratings_over_time(eda.ratings_over_time(ratings, "M"),
                                           eda.ratings_over_time(ratings, "Y")),
        "popularity": eda.plot_popularity_vs_score(eda.popularity_vs_score(analytics_table)),
        "platforms": eda.plot_titles_per_platform(eda.titles_per_platform_type(titles)),
        "years": eda.plot_release_years(eda.release_year_counts(titles)),
        "durations": eda.plot_durations(eda.durations(titles)),
        "genres": eda.plot_top_values(eda.top_genres(titles, by_platform=True), "genres", "genre"),
        "countries": eda.plot_top_values(eda.top_countries(titles), "country", "country",
                                         "countries"),
        "maturity": eda.plot_maturity_ratings(eda.maturity_ratings(titles)),
        "overlap": eda.plot_platform_overlap(eda.platform_overlap(titles)),
    }


def test_every_figure_is_titled_and_labelled(ratings, titles, analytics_table):
    for name, fig in _figures(ratings, titles, analytics_table).items():
        assert missing_labels(fig) == [], name


def test_long_tails_use_log_scales(ratings):
    fig = eda.plot_activity(eda.activity_per_user(ratings), eda.activity_per_title(ratings))
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in fig.axes[:2])


def test_top_values_title_uses_plural(titles):
    fig = eda.plot_top_values(eda.top_countries(titles), "country", "country", "countries")
    assert fig.axes[0].get_title() == "Top 3 countries"


def test_durations_without_shows_has_one_panel(titles):
    fig = eda.plot_durations(eda.durations(titles[titles["type"] == "Movie"]))
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "minutes"


def test_maturity_ratings_single_platform_draws_bars(titles):
    counts = eda.maturity_ratings(titles.assign(platform="movielens"))
    fig = eda.plot_maturity_ratings(counts)
    assert missing_labels(fig) == [] and "on movielens" in fig.axes[0].get_title()
    assert len(fig.axes[0].patches) == counts["rating"].nunique()  # one bar per rating


def test_durations_boxplot_names_the_platforms(titles):
    fig = eda.plot_durations(eda.durations(titles))
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["disney_plus", "hulu", "netflix"]


def test_the_release_year_figure_starts_where_the_catalog_does():
    def counts(n_old: int, first: int = 1990) -> pd.DataFrame:
        # n_old titles of 1901, then 300 titles over 30 years from ``first``
        return pd.DataFrame({"platform": "p", "release_year": [1901, *range(first, first + 30)],
                             "n_titles": [n_old] + [10] * 30})

    assert eda.first_drawn_year(counts(5)) == 1900  # 5 of 305: more than the oldest 1%
    assert eda.first_drawn_year(counts(1)) == 1990  # 1 of 301: the thin tail is cut
    assert eda.first_drawn_year(counts(1, first=2093)) == 2090  # any calendar
    fig = eda.plot_release_years(counts(1))
    assert min(fig.axes[0].lines[0].get_xdata()) == 1990
    assert min(eda.plot_release_years(counts(1), since=1900).axes[0].lines[0].get_xdata()) == 1901
