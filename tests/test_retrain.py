"""Retraining: validation, idempotent append, the promotion rule, decision records, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from store_fixtures import build_store, fake_trainer, make_ratings, make_titles, to_raw_csv

from recsys_utils.data.store import load_store
from recsys_utils.errors import DataError
from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle import registry, retrain
from recsys_utils.paths import project_paths

PARAMS = {"rating_params": {"model": "fake"}, "ranking_params": {}, "seed": 42}


# --------------------------------------------------------------------------- the rule
CHAMPION = {"rmse": 0.900, "ndcg@10": 0.100}


def test_better_challenger_is_promoted():
    d = retrain.decide(CHAMPION, {"rmse": 0.880, "ndcg@10": 0.120}, tolerance=0.005)
    assert d.promote
    assert "0.005" in d.rule


def test_equal_within_tolerance_is_promoted():
    d = retrain.decide(CHAMPION, {"rmse": 0.904, "ndcg@10": 0.096}, tolerance=0.005)
    assert d.promote
    assert all("within" in r for r in d.reasons)


def test_worse_rmse_beyond_tolerance_is_rejected():
    d = retrain.decide(CHAMPION, {"rmse": 0.906, "ndcg@10": 0.200}, tolerance=0.005)
    assert not d.promote
    assert any(r.startswith("rmse worse") for r in d.reasons)


def test_worse_ndcg_beyond_tolerance_is_rejected():
    d = retrain.decide(CHAMPION, {"rmse": 0.800, "ndcg@10": 0.094}, tolerance=0.005)
    assert not d.promote
    assert any(r.startswith("ndcg@10 worse") for r in d.reasons)


def test_ndcg_tolerance_can_differ():
    challenger = {"rmse": 0.900, "ndcg@10": 0.090}
    assert not retrain.decide(CHAMPION, challenger, 0.005).promote
    assert retrain.decide(CHAMPION, challenger, 0.005, ndcg_tolerance=0.02).promote


def test_unmeasured_ndcg_falls_back_to_rmse():
    d = retrain.decide({"rmse": 0.9, "ndcg@10": float("nan")},
                       {"rmse": 0.9, "ndcg@10": float("nan")})
    assert d.promote
    assert any("not measured" in r for r in d.reasons)


# --------------------------------------------------------------------------- holdout
def test_select_holdout_takes_the_newest():
    df = pd.DataFrame({"user": [1, 2, 3, 4], "item": ["a", "b", "c", "d"], "score": 3.0,
                       "timestamp": pd.to_datetime(["2020-01-04", "2020-01-01", "2020-01-03",
                                                    "2020-01-02"])})
    assert retrain.select_holdout(df, 0.5).tolist() == [True, False, True, False]
    assert retrain.select_holdout(df, 0.25).tolist() == [True, False, False, False]
    assert retrain.select_holdout(df, days=1.5).tolist() == [True, False, True, False]
    with pytest.raises(ValueError):
        retrain.select_holdout(df, 0)


class _ListModel:
    """Predicts 3.0 for everything; recommends a fixed list."""

    def predict(self, user, item):
        return 3.0

    def recommend(self, user, n=10):
        class R:
            items = pd.DataFrame({"item_id": ["x", "a", "y", "b"][:n]})
        return R()


def test_evaluate_on_holdout_hand_computed():
    holdout = pd.DataFrame({"user": [1, 1, 1], "item": ["a", "b", "c"],
                            "score": [5.0, 4.0, 2.0]})
    seen = pd.DataFrame({"user": [1], "item": ["x"], "score": [3.0]})
    out = retrain.evaluate_on_holdout(_ListModel(), holdout, seen, k=2)
    assert out["rmse"] == pytest.approx(np.sqrt((4 + 1 + 1) / 3))
    assert out["mae"] == pytest.approx(4 / 3)
    # "x" was rated before the holdout: dropped, so the top-2 is [a, y]: one hit of two.
    assert out["ndcg@2"] == pytest.approx(1 / (1 + 1 / np.log2(3)))
    assert out["n_ranked_users"] == 1


class _PopularModel(_ListModel):
    """Recommends "b", then "a": user 1 loses a hit against _ListModel, user 2 gains one."""

    def recommend(self, user, n=10):
        class R:
            items = pd.DataFrame({"item_id": ["b", "a"][:n]})
        return R()


def test_the_paired_difference_and_its_error_go_with_the_decision():
    holdout = pd.DataFrame({"user": [1, 1, 2], "item": ["a", "c", "b"],
                            "score": [5.0, 2.0, 4.0]})
    seen = pd.DataFrame({"user": [1], "item": ["x"], "score": [3.0]})
    champion, challenger, paired = retrain.compare_on_holdout(_ListModel(), _PopularModel(),
                                                              holdout, seen, k=1)
    # k=1: champion lists [a] for user 1 (x seen), [x] for user 2; challenger [b] for both
    assert (champion["ndcg@1"], challenger["ndcg@1"]) == (0.5, 0.5)
    assert paired == {"difference": 0.0, "se": pytest.approx(1.0), "n_users": 2}
    d = retrain.decide(champion, challenger, 0.005, ndcg_key="ndcg@1", paired=paired)
    assert d.promote and "paired s.e. 1.0000 over 2 users" in d.reasons[1]


# --------------------------------------------------------------------------- end to end
@pytest.fixture()
def scenario(tmp_path):
    """A store of 30 users x 8 titles with its newest quarter held back as a raw CSV."""
    paths = project_paths(tmp_path)
    titles = make_titles(8)
    ratings = make_ratings(n_users=30, n_items=8, seed=1, days=360)
    ratings = ratings.sort_values("timestamp", ignore_index=True)
    cut = ratings["timestamp"].max() - pd.Timedelta(days=90)
    old, new = ratings[ratings["timestamp"] < cut], ratings[ratings["timestamp"] >= cut]
    build_store(paths, old, titles)
    _, model_df = load_store(paths)
    champion = fake_trainer()(model_df, titles, PARAMS)
    registry.register_model(champion, params=PARAMS, metrics={"rmse": 1.0},
                            data_fingerprint=data_fingerprint(model_df), paths=paths)
    csv = paths.raw / "new.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    to_raw_csv(new, csv)
    return paths, csv, len(old), len(new)


def _run(paths, csv, trainer=None, **kw):
    kw.setdefault("force", True)  # these tests judge a challenger; the policy has its own
    lines = []
    record = retrain.run_retrain(csv, paths=paths, trainer=trainer or fake_trainer(),
                                 min_holdout=5, log=lines.append, **kw)
    return record, "\n".join(lines)


def test_retrain_appends_judges_and_records(scenario):
    paths, csv, n_old, n_new = scenario
    record, out = _run(paths, csv)
    assert record["store"]["added"] == n_new
    ratings, _ = load_store(paths)
    assert len(ratings) == n_old + n_new
    assert record["holdout"]["n_ratings"] == int(np.ceil(n_new / 2))
    assert record["decision"] in ("promoted", "kept champion")
    assert record["status"] == "done"
    assert set(record["champion"]["metrics"]) >= {"rmse", "ndcg@10", "n_ratings"}
    # The challenger is registered either way; the pointer follows the decision.
    version = record["challenger"]["version"]
    assert version in registry.list_versions(paths)
    expected = version if record["decision"] == "promoted" else "v0001"
    assert registry.champion_version(paths) == expected == record["champion_after"]
    saved = json.loads((paths.reports / "decisions" / f"{record['stamp']}.json").read_text())
    assert saved["decision"] == record["decision"]
    assert "accounting:" in out and f"{n_new:,} read" in out
    assert '"decision"' in out  # the record is printed
    # The registered challenger was refit on the whole store, holdout included.
    model, manifest = registry.load_version(version, paths)
    assert model.n_train == n_old + n_new
    assert manifest["data_fingerprint"] == data_fingerprint(load_store(paths)[1])
    assert manifest["metrics"]["holdout"]["n_ratings"] == record["holdout"]["n_ratings"]


def test_retrain_twice_adds_nothing_the_second_time(scenario):
    paths, csv, n_old, n_new = scenario
    _run(paths, csv)
    versions = registry.list_versions(paths)
    record, out = _run(paths, csv)
    assert record["decision"] == "skipped"
    assert record["store"]["new"] == 0
    assert record["store"]["already_present"] == n_new
    assert registry.list_versions(paths) == versions  # nothing trained
    assert len(load_store(paths)[0]) == n_old + n_new
    assert "0 new ratings" in out


def test_worse_challenger_keeps_the_champion(scenario):
    paths, csv, _, _ = scenario
    record, _ = _run(paths, csv, trainer=fake_trainer(shift=1.5))
    assert record["decision"] == "kept champion"
    assert registry.champion_version(paths) == "v0001"
    assert any(r.startswith("rmse worse") for r in record["reasons"])
    assert record["challenger"]["version"] == "v0002"  # registered for audit, not promoted


def test_rejected_rows_are_recorded(scenario):
    paths, csv, _, n_new = scenario
    with open(csv, "a", encoding="utf-8") as fh:
        fh.write("abc,4.0,1600000000,ml1\n1,9,1600000000,ml1\n1,4.0,1600000000,zz\n")
    record, out = _run(paths, csv)
    assert record["new_ratings"]["rejected"] == 3
    assert record["new_ratings"]["kept"] == n_new
    rejected = pd.read_parquet(paths.root / record["new_ratings"]["rejected_file"])
    assert set(rejected["reason"]) == {"non-numeric userId", "score outside 0.5-5",
                                       "unknown movieId"}
    assert rejected["line"].min() == n_new + 2


def test_small_holdout_appends_without_training(scenario):
    paths, csv, n_old, n_new = scenario
    record = retrain.run_retrain(csv, paths=paths, trainer=fake_trainer(), min_holdout=10_000,
                                 force=True, log=lambda s: None)
    assert record["decision"].startswith("kept champion (holdout too small")
    assert registry.list_versions(paths) == ["v0001"]
    assert len(load_store(paths)[0]) == n_old + n_new


def test_a_rating_of_a_copy_is_stored_under_its_title(tmp_path):
    paths = project_paths(tmp_path)
    titles = make_titles(8)
    titles.loc[titles["id"] == "ml8", "item_id"] = "ml7"  # ml8: ml7's copy on another platform
    ratings = make_ratings(n_users=5, n_items=7, seed=1)
    build_store(paths, ratings, titles)
    _, model_df = load_store(paths)
    registry.register_model(fake_trainer()(model_df, titles, PARAMS), params=PARAMS,
                            metrics={"rmse": 1.0}, data_fingerprint=data_fingerprint(model_df),
                            paths=paths)
    csv = paths.raw / "new.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    later = int(ratings["timestamp"].max().timestamp()) + 60
    csv.write_text(f"userId,rating,timestamp,movieId\n9,4.5,{later},ml8\n")
    record = retrain.run_retrain(csv, paths=paths, trainer=fake_trainer(), min_holdout=10_000,
                                 force=True, log=lambda s: None)
    assert record["new_ratings"]["kept"] == 1
    stored = load_store(paths)[0]
    assert stored.loc[stored["user_id"] == 9, "item_id"].tolist() == ["ml7"]


def test_pending_record_is_recovered(scenario, monkeypatch):
    paths, csv, _, _ = scenario

    def crash(*args, **kwargs):
        raise RuntimeError("killed after the append")

    monkeypatch.setattr(registry, "promote", crash)
    with pytest.raises(RuntimeError):
        _run(paths, csv, tolerance=10.0)  # a huge tolerance: the challenger is promoted
    monkeypatch.undo()
    [pending] = list((paths.reports / "decisions").glob("*.json"))
    before = json.loads(pending.read_text())
    assert before["status"] == "pending"
    assert before["decision"] == "promoted"
    assert registry.champion_version(paths) == "v0001"  # the crash hit before the pointer
    record, out = _run(paths, csv)
    assert "recovered: pending decision" in out
    assert registry.champion_version(paths) == before["challenger"]["version"]
    assert json.loads(pending.read_text())["status"] == "done (recovered)"
    assert record["decision"] == "skipped"


def test_missing_file_is_a_data_error(scenario):
    paths, _, _, _ = scenario
    with pytest.raises(retrain.DataError, match="not found"):
        retrain.run_retrain(paths.root / "nope.csv", paths=paths, log=lambda s: None)


# --------------------------------------------------------------------------- hold back
def test_hold_back_moves_the_latest_ratings_out(scenario):
    paths, _, n_old, _ = scenario
    summary = retrain.hold_back(paths, days=30, trainer=fake_trainer(), log=lambda s: None)
    remaining, model_df = load_store(paths)
    assert summary["held_back"] + len(remaining) == n_old
    raw = pd.read_csv(paths.root / summary["file"])
    assert list(raw.columns) == ["userId", "rating", "timestamp", "movieId"]
    assert len(raw) == summary["held_back"]
    assert pd.to_datetime(raw["timestamp"], unit="s").min() > remaining["timestamp"].max()
    assert registry.champion_version(paths) == summary["champion"] == "v0002"
    _, manifest = registry.load_champion(paths)
    assert manifest["data_fingerprint"] == data_fingerprint(model_df)
    # Replaying the file restores the store.
    record, _ = _run(paths, paths.root / summary["file"])
    assert record["store"]["added"] == summary["held_back"]


def test_default_hold_back_is_the_newest_share_of_the_ratings(scenario):
    """No window given: the newest 2% by time, whatever the calendar (a fixed number of
    days would hold back everything of a short export, or nothing of a sparse one)."""
    paths, _, n_old, _ = scenario
    before, _ = load_store(paths)
    stamps = pd.to_datetime(before["timestamp"])
    summary = retrain.hold_back(paths, trainer=fake_trainer(), log=lambda s: None)
    cutoff = stamps.quantile(1 - retrain.HOLD_BACK_SHARE, interpolation="higher")
    assert summary["held_back"] == int((stamps >= cutoff).sum())
    assert 0 < summary["held_back"] <= 2 * retrain.HOLD_BACK_SHARE * n_old + 1


# --------------------------------------------------------------------------- CLI
def test_cli_without_store_prints_error_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path))
    csv = tmp_path / "new.csv"
    csv.write_text("userId,rating,timestamp,movieId\n1,4,1600000000,ml1\n")
    assert retrain.main(["--new-ratings", str(csv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "make pipeline" in err
    assert "Traceback" not in err


def test_cli_list_and_rollback(scenario, monkeypatch, capsys):
    paths, csv, _, _ = scenario
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    registry.register_model({"x": 1}, params=PARAMS, metrics={}, data_fingerprint="f",
                            paths=paths)
    assert retrain.main(["--list"]) == 0
    assert "v0002" in capsys.readouterr().out
    assert retrain.main(["--rollback", "v0001"]) == 0
    assert registry.champion_version(paths) == "v0001"
    assert retrain.main(["--rollback", "v0042"]) == 2
    assert "v0042" in capsys.readouterr().err


def test_retune_only_sees_the_training_data(monkeypatch):
    import recsys_utils.rating.tuning as tuning

    seen = []

    def fake_tune(model_df, family, grid="small", n_folds=3, seed=42, **kw):
        seen.append((family, len(model_df), grid, n_folds))
        return {"best_params": {"n_factors": 7, "random_state": seed}, "best_rmse": 0.9}

    monkeypatch.setattr(tuning, "tune_family", fake_tune)
    params = {"rating_params": {"components": {"svd": {"n_factors": 100}, "odd": {"x": 1}},
                                "alpha": 1.0},
              "ranking_params": {"w": 0.5}, "seed": 7}
    df = pd.DataFrame({"user": [1, 2], "item": ["a", "b"], "score": [3.0, 4.0]})
    new, summary = retrain.retune_params(df, params, log=lambda s: None)
    assert seen == [("SVD", 2, "small", 3)]
    assert new["rating_params"]["components"]["svd"] == {"n_factors": 7}
    assert new["rating_params"]["components"]["odd"] == {"x": 1}
    assert new["ranking_params"] == {"w": 0.5}
    assert params["rating_params"]["components"]["svd"] == {"n_factors": 100}  # not mutated
    assert summary["odd"].startswith("kept")
    assert new["tuning"]["rating"]["svd"] == summary["svd"]  # the manifest's record follows
    assert "tuning" not in params


def test_retune_chooses_the_ranking_again_on_the_training_data_only(monkeypatch):
    from ranking_fixtures import synthetic_ratings, synthetic_titles

    from recsys_utils.ranking import evaluation

    ratings, titles = synthetic_ratings(0), synthetic_titles()
    grid = {"ease": {"l2": [1.0, 1e5]}, "itemknn": {"neighbours": [5]}}
    first = evaluation.tune_ranking(ratings, titles, grid, min_coverage_ratio=0.0, seed=0)
    params = {"rating_params": {}, "seed": 0, "ranking_params": first.best_params,
              "tuning": {"ranking": first.record()}}
    newer = ratings[ratings["timestamp"] >= ratings["timestamp"].quantile(0.3)]
    real, seen = evaluation.tune_ranking, []

    def spy(model_df, titles, grid, **kw):
        seen.append((model_df, grid, kw))
        return real(model_df, titles, grid, **kw)

    monkeypatch.setattr(evaluation, "tune_ranking", spy)
    new, summary = retrain.rechoose_ranking(newer, titles, params, log=lambda s: None)
    [(df, used_grid, kw)] = seen
    assert df is newer and used_grid == first.record()["grid"]
    assert kw["min_coverage_ratio"] == 0.0 and kw["rerank"] is True and kw["new_users"] is True
    # validation: each user's latest 20% of the data given (no second level carved)
    assert kw["validation"](newer).test.equals(evaluation.per_user_split(newer, 0.2, None).test)
    again = real(newer, titles, grid, min_coverage_ratio=0.0, seed=0,
                 validation=kw["validation"])
    assert new["ranking_params"] == again.best_params
    assert new["tuning"]["ranking"]["chosen"] == again.best_params
    assert new["tuning"]["ranking"]["chosen_by"].startswith("recsys-retrain --retune")
    assert summary["outcome"] == again.summary
    assert params["ranking_params"] == first.best_params  # not mutated
    # a manifest from before the protocol was recorded: 03's defaults (floor 5x)
    old = {**params, "tuning": {"ranking": {k: v for k, v in first.record().items()
                                            if k != "protocol"}}}
    retrain.rechoose_ranking(newer, titles, old, log=lambda s: None)
    assert seen[-1][2]["min_coverage_ratio"] == 5.0
    assert seen[-1][2]["new_users"] is False  # nor was a new-user policy chosen then
    # kept: a ranking not chosen on data, or data that cannot support a choice
    untuned = {**params, "tuning": {"ranking": {"tuned": False, "source": "ranking_params"}}}
    kept, note = retrain.rechoose_ranking(newer, titles, untuned, log=lambda s: None)
    assert kept is untuned and note["outcome"].startswith("kept: the champion's ranking")
    kept, note = retrain.rechoose_ranking(newer.assign(score=1.0), titles, params,
                                          log=lambda s: None)
    assert kept is params and "no validation user has a relevant title" in note["outcome"]


def test_retune_records_the_ranking_choice_in_the_decision(scenario):
    paths, csv, _, _ = scenario
    record, _ = _run(paths, csv, retune=True)
    assert record["retune"]["ranking"]["outcome"] == (
        "kept: the champion's ranking was not chosen on data (no tuning record)")


def test_wrong_header_is_a_data_error_with_rejections(scenario):
    paths, _, n_old, _ = scenario
    bad = paths.raw / "bad.csv"
    bad.write_text("user,score,time,item\n1,4.0,1600000000,ml1\n")
    with pytest.raises(retrain.DataError, match="wrong header"):
        retrain.run_retrain(bad, paths=paths, trainer=fake_trainer(), log=lambda s: None)
    [rejected] = list(paths.interim.glob("rejected_retrain_*.parquet"))
    assert pd.read_parquet(rejected)["reason"].tolist() == ["wrong header"]
    assert len(load_store(paths)[0]) == n_old


def test_a_file_of_bad_rows_says_why_not_which_columns_were_ignored(scenario):
    """The error gives the rows' reasons first; a note (here: an ignored column) follows."""
    paths, _, n_old, _ = scenario
    bad = paths.raw / "tenths.csv"
    bad.write_text("userId,rating,timestamp,movieId,device\n1,4.0,1600000000,nope,tv\n")
    with pytest.raises(retrain.DataError, match=r"no valid rating to add \(unknown movieId; "
                                               r".*'device' ignored"):
        retrain.run_retrain(bad, paths=paths, trainer=fake_trainer(), log=lambda s: None)
    assert len(load_store(paths)[0]) == n_old


def test_failure_while_training_changes_nothing(scenario):
    paths, csv, n_old, _ = scenario

    def broken_trainer(model_df, titles, params):
        raise MemoryError("killed while training")

    with pytest.raises(MemoryError):
        retrain.run_retrain(csv, paths=paths, trainer=broken_trainer, min_holdout=5,
                            force=True, log=lambda s: None)
    assert len(load_store(paths)[0]) == n_old
    assert registry.list_versions(paths) == ["v0001"]
    assert not list((paths.reports / "decisions").glob("*.json"))
    # ... and the next run does the whole job.
    record, _ = _run(paths, csv)
    assert record["store"]["added"] > 0


# --------------------------------------------------------------------------- issue 11
def test_future_timestamps_are_rejected_with_a_reason(scenario):
    from recsys_utils.data.ratings import CLOCK_SKEW_SECONDS, validate_ratings

    paths, csv, _, n_new = scenario
    with open(csv, "a", encoding="utf-8") as fh:
        fh.write("1,4.0,3999999999,ml1\n")  # 2096
    record, _ = _run(paths, csv)
    rejected = pd.read_parquet(paths.root / record["new_ratings"]["rejected_file"])
    assert rejected["reason"].tolist() == ["timestamp in the future"]
    assert record["store"]["added"] == n_new
    now = 1_700_000_000
    raw = pd.DataFrame({"userId": [1, 1], "rating": [4, 4], "movieId": ["ml1", "ml2"],
                        "timestamp": [now + CLOCK_SKEW_SECONDS, now + CLOCK_SKEW_SECONDS + 1]})
    kept, rejected = validate_ratings(raw, "f.csv", None, now=now)
    assert kept["item_id"].tolist() == ["ml1"]  # within the clock-skew allowance
    assert rejected["reason"].tolist() == ["timestamp in the future"]


def test_a_garbage_file_is_quoted_briefly(scenario, monkeypatch, capsys):
    import os

    paths, _, _, _ = scenario
    garbage = paths.raw / "garbage.csv"
    garbage.write_bytes(os.urandom(3000))
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    assert retrain.main(["--new-ratings", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "wrong header" in err
    assert len(err) < 400 and all(c.isprintable() for c in err.rstrip("\n"))


def test_cli_rollback_refuses_a_path_and_walks_back(scenario, monkeypatch, capsys):
    paths, _, _, _ = scenario
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    for payload in (2, 3):
        registry.register_model({"x": payload}, params=PARAMS, metrics={},
                                data_fingerprint="f", paths=paths)
    assert retrain.main(["--rollback", "../models/v0001"]) == 2
    assert "not a version name" in capsys.readouterr().err
    assert registry.champion_version(paths) == "v0003"
    assert retrain.main(["--rollback"]) == 0
    assert retrain.main(["--rollback"]) == 0
    assert "champion is now v0001" in capsys.readouterr().out
    assert retrain.main(["--rollback"]) == 2  # nothing further back


def test_a_rollback_during_a_retrain_waits_and_is_not_overwritten(scenario):
    """The rollback starts while the retrain trains: it says it waits, runs after the
    promotion, and its pointer stays."""
    import os
    import subprocess
    import sys

    paths, csv, _, _ = scenario
    registry.register_model({"x": 0}, params=PARAMS, metrics={}, data_fingerprint="f",
                            paths=paths, promote=False)  # v0002, rolled back to below
    rollback = []

    def trainer_that_meets_a_rollback(model_df, titles, params):
        if not rollback:
            env = {**os.environ, "RECSYS_ROOT": str(paths.root)}
            rollback.append(subprocess.Popen(
                [sys.executable, "-m", "recsys_utils.lifecycle.retrain", "--rollback", "v0002"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            assert "waiting for the store lock" in rollback[0].stderr.readline()
        return fake_trainer()(model_df, titles, params)

    record, _ = _run(paths, csv, trainer=trainer_that_meets_a_rollback, tolerance=10.0)
    assert record["decision"] == "promoted" and record["champion_after"] == "v0003"
    out, _ = rollback[0].communicate(timeout=120)
    assert rollback[0].returncode == 0 and "champion is now v0002" in out
    assert registry.champion_version(paths) == "v0002"


def test_a_pointer_moved_during_the_retrain_is_not_overwritten(scenario):
    paths, csv, _, _ = scenario
    other = registry.register_model({"x": 0}, params=PARAMS, metrics={}, data_fingerprint="f",
                                     paths=paths, promote=False)

    def trainer_while_the_pointer_moves(model_df, titles, params):
        registry.promote(other, paths)  # e.g. an operator's promotion by hand
        return fake_trainer()(model_df, titles, params)

    record, _ = _run(paths, csv, trainer=trainer_while_the_pointer_moves, tolerance=10.0)
    assert registry.champion_version(paths) == other
    assert any("not promoted: the champion changed from v0001" in r for r in record["reasons"])


def test_recovery_removes_crash_leftovers(scenario):
    paths, _, _, _ = scenario
    staging = paths.models / ".staging-abcd"
    staging.mkdir()
    (staging / "model.pkl").write_bytes(b"\0" * 1000)
    (paths.processed / ".ratings.parquet.1234.tmp").write_bytes(b"partial")
    orphan = registry.register_model(
        {"x": 1}, params=PARAMS, metrics={}, data_fingerprint="f", paths=paths, promote=False,
        extra={"decision_record": "outputs/reports/decisions/20990101T000000000Z.json"})
    kept = registry.register_model({"x": 2}, params=PARAMS, metrics={}, data_fingerprint="f",
                                   paths=paths, promote=False)
    done = retrain.recover(paths, log=lambda s: None)
    assert not staging.exists()
    assert not list(paths.processed.glob(".*.tmp"))
    assert registry.list_versions(paths) == ["v0001", kept]  # the orphan went, not the other
    assert any(orphan in line for line in done)
    assert retrain.recover(paths, log=lambda s: None) == []


def test_a_pending_record_of_older_code_is_still_finished(scenario):
    """Records written before transactions had their own fields: judged by the model table."""
    paths, csv, _, _ = scenario
    record, _ = _run(paths, csv, tolerance=10.0)
    registry.rollback("v0001", paths)  # as if the crash came before the pointer moved
    path = paths.reports / "decisions" / f"{record['stamp']}.json"
    legacy = {k: v for k, v in record.items() if k not in ("transaction", "record_file")}
    path.write_text(json.dumps({**legacy, "status": "pending"}))
    done = retrain.recover(paths, log=lambda s: None)
    assert any("done (recovered)" in line for line in done)
    assert registry.champion_version(paths) == record["challenger"]["version"]


# --------------------------------------------------------------------------- the policy
NEVER = {"psi_threshold": float("inf"), "error_increase": float("inf"),
         "new_user_threshold": float("inf")}


def test_policy_no_retrain_appends_and_says_why(scenario):
    paths, csv, n_old, n_new = scenario
    record, out = _run(paths, csv, force=False, thresholds=NEVER)
    assert "no retrain: all signals under thresholds" in out
    assert "signals of the new ratings: PSI" in out
    assert record["decision"] == "kept champion (policy: no retrain)"
    assert record["reasons"][0].startswith("no retrain: all signals under thresholds")
    assert record["policy"]["retrain"] is False and record["policy"]["fired"] == []
    assert registry.list_versions(paths) == ["v0001"]  # nothing trained
    assert len(load_store(paths)[0]) == n_old + n_new  # ... but the ratings are kept
    assert (paths.root / record["store"]["history_file"]).is_file()


def test_policy_retrains_when_a_signal_crosses_its_threshold(scenario):
    paths, csv, _, _ = scenario
    record, out = _run(paths, csv, force=False, thresholds={**NEVER, "psi_threshold": 0.0})
    psi = record["policy"]["signals"]["psi"]
    assert psi > 0
    assert f"retrain: PSI {psi:.4g} > 0" in out
    assert record["decision"] in ("promoted", "kept champion")
    assert record["challenger"]["version"] == "v0002"


def test_force_retrains_whatever_the_policy_says(scenario):
    paths, csv, _, _ = scenario
    record, out = _run(paths, csv, force=True, thresholds=NEVER)
    assert "no retrain: all signals under thresholds (--force: retraining anyway)" in out
    assert record["policy"]["forced"] and record["challenger"]["version"] == "v0002"


def test_policy_signals_are_computed_from_the_batch(scenario):
    paths, csv, n_old, n_new = scenario
    from recsys_utils.lifecycle.monitoring import score_psi

    store_ratings, store_model = load_store(paths)
    batch = pd.read_csv(csv)
    record, _ = _run(paths, csv, force=False, thresholds=NEVER)
    signals = record["policy"]["signals"]
    assert signals["psi"] == pytest.approx(score_psi(store_model["score"], batch["rating"]))
    assert signals["unknown_users"] == 0.0  # every user of the fixture rated before
    assert signals["error_increase"] == 0.0  # the champion's first batch: the reference
    assert record["policy"]["error_reference"].startswith("this is the first batch")


def test_error_increase_is_relative_to_the_first_batch_served(scenario):
    paths, csv, _, n_new = scenario
    new = pd.read_csv(csv).sort_values("timestamp")
    first, second = paths.raw / "first.csv", paths.raw / "second.csv"
    new.iloc[: n_new // 2].to_csv(first, index=False)
    worse = new.iloc[n_new // 2:].copy()
    worse["rating"] = np.where(worse["rating"] >= 3, 0.5, 5.0)  # opinions the champion misses
    worse.to_csv(second, index=False)
    one, _ = _run(paths, first, force=False, thresholds=NEVER)
    two, out = _run(paths, second, force=False,
                    thresholds={**NEVER, "error_increase": 0.1})
    rmse_1, rmse_2 = (r["policy"]["signals"]["champion_rmse"] for r in (one, two))
    assert two["policy"]["signals"]["error_increase"] == pytest.approx(rmse_2 / rmse_1 - 1)
    assert rmse_2 / rmse_1 - 1 > 0.1 and "retrain: error increase" in out
    assert one["stamp"] in two["policy"]["error_reference"]


def test_thresholds_come_from_05_then_defaults_then_flags(scenario):
    from recsys_utils.lifecycle import monitoring

    paths, csv, _, _ = scenario
    got, source = monitoring.read_thresholds(paths)
    assert got == monitoring.DEFAULT_THRESHOLDS and source.startswith("defaults")
    saved = {"psi_threshold": 1.0, "error_increase": None, "new_user_threshold": 0.8}
    paths.reports.mkdir(parents=True, exist_ok=True)
    (paths.reports / monitoring.THRESHOLDS_FILE).write_text(json.dumps({"thresholds": saved}))
    got, source = monitoring.read_thresholds(paths)
    assert got == {"psi_threshold": 1.0, "error_increase": float("inf"),
                   "new_user_threshold": 0.8}
    assert "monitoring.json (05_monitoring)" in source
    record, out = _run(paths, csv, force=False, thresholds={"psi_threshold": 0.0,
                                                             "error_increase": None})
    assert record["policy"]["thresholds"] == {"psi_threshold": 0.0, "error_increase": None,
                                              "new_user_threshold": 0.8}
    assert "psi_threshold 0 given" in record["policy"]["thresholds_from"]


def test_05_saves_its_thresholds_for_retraining(tmp_path):
    from monitoring_fixtures import rating_history

    from recsys_utils.lifecycle import monitoring

    paths = project_paths(tmp_path)
    result = monitoring.monitor_timeline(rating_history(), paths=paths)
    got, source = monitoring.read_thresholds(paths)
    assert "05_monitoring" in source
    assert got == {n: result.settings[n] for n in monitoring.THRESHOLDS}


# --------------------------------------------------------------------------- damage, bad values
def test_cli_a_damaged_version_is_listed_and_blocks_only_itself(scenario, monkeypatch, capsys):
    paths, _, _, _ = scenario
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    for payload, promote in ((2, True), (3, False)):
        registry.register_model({"x": payload}, params=PARAMS, metrics={}, data_fingerprint="f",
                                paths=paths, promote=promote)
    (paths.models / "v0003" / "manifest.json").write_bytes(b"")  # never champion
    assert retrain.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "damaged: manifest.json is not valid JSON" in out and "v0002" in out
    assert retrain.main(["--rollback", "v0001"]) == 0
    assert registry.champion_version(paths) == "v0001"
    assert retrain.main(["--rollback", "v0003"]) == 2  # the one command that needs it
    assert "v0003/manifest.json is not valid JSON" in capsys.readouterr().err
    # the champion's own manifest garbled: rolling back away from it still works
    (paths.models / "v0001" / "manifest.json").write_text("{garbled")
    assert retrain.main(["--rollback", "v0002"]) == 0
    assert registry.champion_version(paths) == "v0002"


@pytest.mark.parametrize("content", ['{"version": "v00', '{"version": "v0042"}'])
def test_cli_a_damaged_pointer_is_repaired_by_a_named_rollback(scenario, monkeypatch, capsys,
                                                               content):
    paths, csv, _, _ = scenario
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    registry.register_model({"x": 2}, params=PARAMS, metrics={}, data_fingerprint="f",
                            paths=paths)
    pointer, history = paths.models / "champion.json", paths.models / "champion_history.jsonl"
    pointer.write_text(content)
    logged = history.read_text()
    store = (paths.processed / "ratings.parquet").read_bytes()
    assert retrain.main(["--new-ratings", str(csv)]) == 2
    assert retrain.main(["--rollback"]) == 2
    err = capsys.readouterr().err
    assert err.count("`recsys-retrain --rollback VERSION` (the last good champion was v0002") == 2
    assert "make pipeline" not in err and "Traceback" not in err
    assert history.read_text() == logged  # not logged as a pointer change
    assert (paths.processed / "ratings.parquet").read_bytes() == store
    assert retrain.main(["--list"]) == 0
    assert capsys.readouterr().err.startswith(f"warning: {pointer} ")
    assert retrain.main(["--rollback", "v0001"]) == 0
    assert registry.champion_version(paths) == "v0001"
    assert "replaced a damaged champion.json" in json.loads(history.read_text().splitlines()[-1])[
        "reason"]


def test_recovery_removes_no_version_while_the_pointer_is_damaged(scenario):
    """The champion could be any version then: orphans wait for the repair."""
    paths, _, _, _ = scenario
    orphan = registry.register_model(
        {"x": 2}, params=PARAMS, metrics={}, data_fingerprint="f", paths=paths, promote=False,
        extra={"decision_record": "outputs/reports/decisions/never-written.json"})
    (paths.models / "champion.json").write_text("{")
    retrain.recover(paths, log=lambda _: None)
    assert orphan in registry.list_versions(paths)
    registry.rollback("v0001", paths)
    assert f"removed {orphan} (registered by a transaction that did not commit)" in (
        retrain.recover(paths, log=lambda _: None))


@pytest.mark.parametrize(("args", "expected"), [
    (["--hold-back", "2016Q9"], "expected a quarter such as 2016Q3"),
    (["--hold-back", "abc"], "expected a quarter such as 2016Q3"),
    (["--new-ratings", "new.csv", "--force", "--holdout-fraction", "2"],
     "--holdout-fraction: expected a fraction in (0, 1]"),
    (["--new-ratings", "new.csv", "--holdout-fraction", "nan"], "a fraction in (0, 1]"),
    (["--new-ratings", "new.csv", "--holdout-days", "0"], "a number of days > 0"),
    (["--new-ratings", "new.csv", "--tolerance", "-1"], "--tolerance: expected a number >= 0"),
    (["--new-ratings", "new.csv", "--ndcg-tolerance", "inf"], "a number >= 0"),
    (["--new-ratings", "new.csv", "--min-holdout", "-5"], "a whole number >= 1"),
    (["--new-ratings", "new.csv", "--psi-threshold", "nan"], "--psi-threshold: expected"),
])
def test_cli_bad_values_are_usage_errors(tmp_path, monkeypatch, capsys, args, expected):
    """Refused by argparse (exit 2, the accepted form), before any file is read."""
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "new.csv").write_text("userId,rating,timestamp,movieId\n1,4,1600000000,ml1\n")
    with pytest.raises(SystemExit) as exited:
        retrain.main(args)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and expected in err and "Traceback" not in err


def test_good_values_parse():
    parse = retrain.build_parser().parse_args
    assert parse(["--hold-back", "2016q3"]).hold_back == "2016Q3"
    assert parse(["--hold-back"]).hold_back == ""  # the default share
    args = parse(["--new-ratings", "f.csv", "--holdout-fraction", "1", "--min-holdout", "1",
                  "--tolerance", "0", "--psi-threshold", "inf", "--error-increase", "-0.1"])
    assert (args.holdout_fraction, args.min_holdout, args.tolerance) == (1.0, 1, 0.0)


def test_hold_back_refuses_a_bad_quarter(scenario):
    paths, _, _, _ = scenario
    with pytest.raises(DataError, match="'2016Q9' is not a quarter"):
        retrain.hold_back(paths, quarter="2016Q9", trainer=fake_trainer())


def test_a_spark_batch_champion_keeps_the_new_ratings_and_says_how_06_refits_it(scenario):
    """It used to refuse the whole batch (nothing appended) with "no params ... re-run make
    pipeline"; now the ratings are kept and the record names the command that refits."""
    paths, csv, n_old, n_new = scenario
    _, model_df = load_store(paths)
    lists = registry.register_model({"top_n": "stored lists"}, params={"engine": "spark", "k": 10},
                                    metrics={"ndcg": 0.1}, paths=paths, promote=True,
                                    data_fingerprint=data_fingerprint(model_df),
                                    extra={"engine": "spark", "kind": registry.BATCH_KIND})
    record, out = _run(paths, csv)
    assert record["decision"] == "kept champion (Spark batch version)"
    assert record["status"] == "done" and record["champion_after"] == lists
    assert "recsys-pipeline --only 06" in record["reasons"][0]
    assert registry.list_versions(paths) == ["v0001", lists]  # nothing trained
    assert len(load_store(paths)[0]) == n_old + n_new  # ... but the ratings are kept
    assert (paths.root / record["store"]["history_file"]).is_file()
    assert "--force / --retune: ignored" in out
    with pytest.raises(DataError, match=r"v0002 is a Spark batch version .*roll back to a "
                                        r"recommender version first"):
        retrain.hold_back(paths, days=30, log=lambda _: None)
