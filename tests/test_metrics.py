"""Top-N metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from recsys_utils.ranking.metrics import (
    average_precision_at_k,
    catalog_coverage,
    map_at_k,
    ndcg_at_k,
    novelty,
    per_user_ndcg,
    precision_at_k,
    ranking_report,
    recall_at_k,
    top_k,
)

LOG3 = math.log2(3)  # discount of rank 2 is 1/log2(3)


def test_precision_recall_ndcg_ap_at_3():
    rec, rel = ["a", "b", "c", "d"], {"b", "d", "e"}
    # top-3 = a b c: one hit, at rank 2
    assert precision_at_k(rec, rel, 3) == pytest.approx(1 / 3)
    assert recall_at_k(rec, rel, 3) == pytest.approx(1 / 3)
    idcg = 1 + 1 / LOG3 + 1 / 2
    assert ndcg_at_k(rec, rel, 3) == pytest.approx((1 / LOG3) / idcg)
    assert average_precision_at_k(rec, rel, 3) == pytest.approx((1 / 2) / 3)


def test_precision_recall_ndcg_ap_at_4():
    rec, rel = ["a", "b", "c", "d"], {"b", "d", "e"}
    # hits at ranks 2 and 4; ideal = 3 hits first
    assert precision_at_k(rec, rel, 4) == pytest.approx(2 / 4)
    assert recall_at_k(rec, rel, 4) == pytest.approx(2 / 3)
    idcg = 1 + 1 / LOG3 + 1 / 2
    assert ndcg_at_k(rec, rel, 4) == pytest.approx((1 / LOG3 + 1 / math.log2(5)) / idcg)
    # AP@4 = (P@2 + P@4) / min(4, 3) = (1/2 + 2/4) / 3
    assert average_precision_at_k(rec, rel, 4) == pytest.approx(1 / 3)


def test_more_relevant_than_k_perfect_list_scores_one():
    rel = {f"x{i}" for i in range(12)}
    rec = [f"x{i}" for i in range(10)]
    assert ndcg_at_k(rec, rel, 10) == pytest.approx(1.0)
    assert average_precision_at_k(rec, rel, 10) == pytest.approx(1.0)  # min(k, |rel|) = 10
    assert recall_at_k(rec, rel, 10) == pytest.approx(10 / 12)
    assert precision_at_k(rec, rel, 10) == pytest.approx(1.0)


def test_short_list_keeps_k_in_the_precision_denominator():
    rec, rel = ["b"], {"b", "x"}
    assert precision_at_k(rec, rel, 5) == pytest.approx(1 / 5)
    assert recall_at_k(rec, rel, 5) == pytest.approx(1 / 2)
    assert ndcg_at_k(rec, rel, 5) == pytest.approx(1 / (1 + 1 / LOG3))


def test_duplicates_count_once_at_first_position():
    rec, rel = ["b", "b", "c"], {"b", "c"}
    # de-duplicated top-2 is b, c: both hits
    assert precision_at_k(rec, rel, 2) == pytest.approx(1.0)
    assert ndcg_at_k(rec, rel, 2) == pytest.approx(1.0)
    assert ndcg_at_k(["b", "b"], {"b", "c"}, 2) == pytest.approx(1 / (1 + 1 / LOG3))


def test_no_hit_and_no_relevant():
    assert ndcg_at_k(["a", "b"], {"z"}, 2) == 0.0
    assert average_precision_at_k(["a", "b"], {"z"}, 2) == 0.0
    assert math.isnan(ndcg_at_k(["a"], set(), 2))
    assert math.isnan(recall_at_k(["a"], set(), 2))
    assert math.isnan(average_precision_at_k(["a"], set(), 2))
    assert precision_at_k(["a"], set(), 2) == 0.0


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        ndcg_at_k(["a"], {"a"}, 0)


def test_top_k_breaks_score_ties_by_item_id():
    scores = {"d": 0.0, "c": 2.0, "b": 2.0, "a": 1.0}
    assert top_k(scores, 1) == ["b"]
    assert top_k(scores, 3) == ["b", "c", "a"]
    # a tie decides whether a hit is in the top 1: b (relevant) wins over c on the id
    assert precision_at_k(top_k(scores, 1), {"b"}, 1) == 1.0
    assert precision_at_k(top_k(scores, 1), {"c"}, 1) == 0.0


def test_map_excludes_users_without_relevant_items():
    rec = {1: ["a", "b"], 2: ["c", "d"], 3: ["a"]}
    rel = {1: {"b"}, 2: {"c", "d"}, 3: set()}
    # user 1: AP = (1/2)/1; user 2: AP = (1 + 1)/2 = 1; user 3 excluded
    assert map_at_k(rec, rel, 2) == pytest.approx((0.5 + 1.0) / 2)
    assert math.isnan(map_at_k(rec, {3: set()}, 2))


def test_catalog_coverage():
    rec = {1: ["a", "b", "z"], 2: ["b", "c"]}
    assert catalog_coverage(rec, 2, 10) == pytest.approx(3 / 10)  # a, b, c
    assert catalog_coverage(rec, 1, 10) == pytest.approx(2 / 10)  # a, b
    assert catalog_coverage(rec, 3, 4) == pytest.approx(4 / 4)
    with pytest.raises(ValueError):
        catalog_coverage(rec, 2, 0)


def test_novelty_is_mean_self_information_with_a_floor_for_unknown_titles():
    pop = {"a": 0.5, "b": 0.25, "c": 0.0}
    rec = {1: ["a", "b"], 2: ["b", "c"], 3: []}
    # user 1: (1 + 2) / 2; user 2: (2 + floor 2) / 2 (c never rated -> rarest known); 3 skipped
    assert novelty(rec, 2, pop) == pytest.approx((1.5 + 2.0) / 2)
    assert novelty({1: ["a", "q"]}, 2, pop) == pytest.approx((1 + 2) / 2)


def test_ranking_report_rules():
    rec = {1: ["a", "b", "c"], 2: ["c", "d"], 3: ["a"], 4: ["e"]}
    rel = {1: {"a"}, 2: {"d", "e"}, 3: set(), 5: {"a"}}
    pop = {"a": 0.5, "b": 0.5, "c": 0.25, "d": 0.25, "e": 0.125}
    rep = ranking_report(rec, rel, 2, pop, n_catalog=10)
    # evaluated: users 1, 2 and 5 (5 has no list: scores 0); 3 has no relevant item
    assert rep["n_users"] == 3
    assert rep["n_users_no_relevant"] == 1
    assert rep["n_lists"] == 4
    assert rep["precision"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert rep["recall"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    ndcg_2 = (1 / LOG3) / (1 + 1 / LOG3)
    assert rep["ndcg"] == pytest.approx((1 + ndcg_2 + 0) / 3)
    assert rep["map"] == pytest.approx((1 + (1 / 2) / 2 + 0) / 3)
    # coverage uses every list, also users 3 and 4: a b c d e
    assert rep["coverage"] == pytest.approx(5 / 10)
    assert rep["k"] == 2
    assert rep["ndcg_se"] > 0


def test_per_user_ndcg_skips_users_without_relevant_items():
    rec = {1: ["a", "b"], 2: ["c"]}
    rel = {1: {"b"}, 2: set(), 3: {"a"}}
    assert per_user_ndcg(rec, rel, 2) == {1: pytest.approx((1 / LOG3) / 1), 3: 0.0}
