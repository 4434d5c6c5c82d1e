"""Continuous training against a real DVC remote (a temporary folder): ``recsys-ct run``.

Week N pushes its store and champion; week N+1, in another clone, starts from them. The
same file twice is a no-op the second time; a promoting run reaches a second clone by
``pull``. The tiny store and the numpy stand-in model (``store_fixtures``) keep each
run to about a second; one test drives the real command with the real Recommender.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from dvc_fixtures import (
    clone,
    commit_all,
    git,
    init_project,
    needs_dvc,
    register,
    remote_files,
    store_with_new_quarter,
)
from serving_fixture import train_fast
from store_fixtures import FakeRecommender, fake_trainer

from recsys_utils.data.store import load_store
from recsys_utils.errors import DataError
from recsys_utils.lifecycle import ct, registry, versioning

pytestmark = needs_dvc
PARAMS = {"rating_params": {"model": "fake"}, "ranking_params": {}, "seed": 42}


@pytest.fixture(autouse=True)
def _no_env_remote(monkeypatch, tmp_path):
    monkeypatch.delenv(versioning.ENV_REMOTE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _week_n(tmp_path, champion_shift: float = 0.0):
    """Clone A: a store missing its newest quarter, a champion, the team remote set."""
    paths = init_project(tmp_path / "a")
    titles, _, csv = store_with_new_quarter(paths)
    _, model_df = load_store(paths)
    register(paths, FakeRecommender(shift=champion_shift).fit(model_df, titles), PARAMS)
    versioning.set_remote(str(tmp_path / "remote"), paths)
    commit_all(paths, "team remote")
    return paths, csv


def _quiet(_: str) -> None:
    pass


def test_bootstrap_then_the_same_ratings_again_in_another_clone_is_a_no_op(tmp_path):
    a, csv = _week_n(tmp_path)
    first = ct.run_ct(csv, paths=a, trainer=fake_trainer(), log=_quiet)
    # Bootstrap: nothing was tracked, so the first run pushes the store and the registry.
    assert first.pushed and sorted(first.changed) == [
        "data/history.dvc", "data/processed.dvc", "outputs/models.dvc"]
    assert first.record["store"]["new"] > 0
    commit_all(a, "week N: store and registry")
    champion = registry.champion_version(a)
    n_stored = len(load_store(a)[0])

    b = clone(a, tmp_path / "b")
    (b.raw).mkdir(parents=True)
    shutil.copy(csv, b.raw / csv.name)  # raw data is never committed: the feed delivers it
    files = remote_files(tmp_path / "remote")
    second = ct.run_ct(b.raw / csv.name, paths=b, trainer=fake_trainer(), log=_quiet)

    # Week N+1 started from week N's store and champion (pulled), found nothing new...
    assert second.record["champion_before"] == champion == registry.champion_version(b)
    assert len(load_store(b)[0]) == n_stored
    assert second.record["decision"] == "skipped"
    # ...and changed nothing: no training, no push, same pointers, same remote.
    assert second.no_op and not second.pushed and second.changed == []
    assert versioning.pointer_hashes(b) == versioning.pointer_hashes(a)
    assert remote_files(tmp_path / "remote") == files
    assert git(b.root, "status", "--porcelain", "--", "*.dvc") == ""
    assert "skipped" in second.report.read_text() and "Drift" not in second.report.read_text()
    assert registry.list_versions(b) == registry.list_versions(a)


def test_a_promotion_reaches_a_second_clone_by_pull(tmp_path):
    a, csv = _week_n(tmp_path, champion_shift=1.5)  # a champion far off the scores
    versioning.push(a, log=_quiet)
    commit_all(a, "week N")
    b = clone(a, tmp_path / "b")
    versioning.pull(b, log=_quiet)
    old = registry.champion_version(b)

    result = ct.run_ct(csv, paths=a, trainer=fake_trainer(), min_holdout=10, log=_quiet)
    assert result.record["decision"] == "promoted", result.record.get("reasons")
    new = result.record["champion_after"]
    assert new != old and sorted(result.changed) == [
        "data/history.dvc", "data/processed.dvc", "outputs/models.dvc"]
    commit_all(a, "week N+1: promoted")

    git(b.root, "pull", "-q", "origin", "main")
    versioning.pull(b, log=_quiet)
    assert registry.champion_version(b) == new
    model_b, manifest = registry.load_champion(b)  # checksums verified
    model_a, _ = registry.load_champion(a)
    assert manifest["version"] == new
    assert model_b.recommend(3, n=5).items.equals(model_a.recommend(3, n=5).items)

    report = result.report.read_text()
    assert "promoted" in report and "| rmse |" in report and "score psi" in report
    assert f"Trigger policy: {result.record['policy']['decision']}" in report
    assert (result.report.parent / "scores.png").stat().st_size > 0


def test_a_kept_champion_still_pushes_the_new_ratings(tmp_path):
    a, csv = _week_n(tmp_path)
    versioning.push(a, log=_quiet)
    before = versioning.pointer_hashes(a)
    # A challenger far worse than the champion: kept, but the store grew.
    result = ct.run_ct(csv, paths=a, trainer=fake_trainer(shift=2.0), min_holdout=10,
                       log=_quiet)
    assert result.record["decision"] == "kept champion"
    assert registry.champion_version(a) == result.record["champion_before"]
    assert "data/processed.dvc" in result.changed and result.pushed
    assert versioning.pointer_hashes(a)["data/processed.dvc"] != before["data/processed.dvc"]


def test_an_unpushed_retrain_is_not_pulled_over(tmp_path):
    from recsys_utils.lifecycle import retrain

    a, csv = _week_n(tmp_path)
    versioning.push(a, log=_quiet)
    retrain.run_retrain(csv, paths=a, trainer=fake_trainer(), min_holdout=10, log=_quiet)
    n_stored = len(load_store(a)[0])
    with pytest.raises(DataError, match="make push"):
        ct.run_ct(csv, paths=a, trainer=fake_trainer(), log=_quiet)
    assert len(load_store(a)[0]) == n_stored  # the retrained store is still there


def test_missing_file_and_missing_champion_are_data_errors(tmp_path):
    paths = init_project(tmp_path / "p")
    with pytest.raises(DataError, match="no new-ratings file"):
        ct.run_ct(tmp_path / "nope.csv", paths=paths, log=_quiet)
    _, _, csv = store_with_new_quarter(paths)
    with pytest.raises(DataError, match="make pipeline"):  # no champion registered
        ct.run_ct(csv, paths=paths, trainer=fake_trainer(), log=_quiet)


def _recsys_ct(root, *args):
    env = {**os.environ, "RECSYS_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "recsys_utils.lifecycle.ct", *args], cwd=root,
                          env=env, capture_output=True, text=True, check=False, timeout=300)


def test_the_command_twice_with_the_real_recommender(tmp_path):
    paths = init_project(tmp_path / "a")
    titles, _, csv = store_with_new_quarter(paths)
    _, model_df = load_store(paths)
    model, params = train_fast(model_df, titles)
    register(paths, model, params)

    first = _recsys_ct(paths.root, "run", "--new-ratings", "data/raw/new.csv")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "decision:" in first.stdout and "pointer files changed" in first.stdout
    hashes = versioning.pointer_hashes(paths)
    assert all(hashes.values())
    # The default remote: a folder outside the repository, here under $XDG_CACHE_HOME.
    assert remote_files(tmp_path / "xdg-cache" / "recsys-dvc-remote")

    second = _recsys_ct(paths.root, "run", "--new-ratings", "data/raw/new.csv")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "no-op" in second.stdout
    assert versioning.pointer_hashes(paths) == hashes

    status = _recsys_ct(paths.root, "status")
    assert status.returncode == 0 and '"workspace": {}' in status.stdout

    missing = _recsys_ct(paths.root, "run", "--new-ratings", "nope.csv")
    assert missing.returncode == 2 and missing.stderr.startswith("error: no new-ratings file")
    assert "Traceback" not in missing.stderr


def test_cli_bad_counts_are_usage_errors_and_prune_says_why_nothing_went(tmp_path, capsys,
                                                                        monkeypatch):
    """--keep -1 would prune every version it may; --min-holdout 0 and a negative
    tolerance make no sense: usage errors before anything runs. A prune with nothing in
    the remote yet says so instead of printing nothing."""
    for argv, message in ((["prune", "--keep", "-1"], "--keep: expected a whole number >= 0"),
                          (["run", "--new-ratings", "x.csv", "--min-holdout", "0"],
                           "--min-holdout: expected a whole number >= 1"),
                          (["run", "--new-ratings", "x.csv", "--tolerance", "-0.1"],
                           "--tolerance: expected a number >= 0")):
        with pytest.raises(SystemExit) as info:
            ct.main(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err
    paths = init_project(tmp_path / "p")
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    assert ct.main(["prune", "--keep", "0"]) == 0
    assert capsys.readouterr().out.startswith("nothing pruned: registry not in the remote yet")
