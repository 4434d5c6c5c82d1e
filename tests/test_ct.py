"""Continuous training against a real DVC remote (a temporary folder): ``recsys-ct run``.

Week N pushes its store and champion; week N+1, in another clone, starts from them. The
same file twice is a no-op the second time; a promoting run reaches a second clone by
``pull``. The tiny store and the numpy stand-in model (``store_fixtures``) keep each
run to about a second; one test drives the real command with the real Recommender.
"""

from __future__ import annotations

import importlib.util
import json
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
from recsys_utils.paths import project_paths

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


def test_run_passes_retune_to_the_retrain(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path))
    monkeypatch.setattr(versioning, "remote_in_use", lambda paths: ("url", "test"))
    monkeypatch.setattr(versioning, "check_remote", lambda *a, **kw: None)
    calls = []
    monkeypatch.setattr(ct, "run_ct", lambda new, **kw: calls.append(kw))
    assert ct.main(["run", "--new-ratings", "x.csv"]) == 0
    assert ct.main(["run", "--new-ratings", "x.csv", "--retune"]) == 0
    assert [kw["retune"] for kw in calls] == [False, True]


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
    assert capsys.readouterr().out.startswith("nothing pruned: the registry is not in the remote yet")


# --------------------------------------------------------------------------- the command line


def _tree(root) -> dict[str, bytes]:
    """Every file under ``root`` with its content, but git's own and DVC's scratch folder
    (``.dvc/tmp``: locks and state, ignored by the committed ``.dvc/.gitignore``)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.relative_to(root).as_posix().startswith((".git/",
                                                                               ".dvc/tmp/"))}


@pytest.mark.parametrize("argv", [["status"], ["remote"], ["pull"], ["prune"],
                                  ["restore", "v0001"]])
def test_outside_a_dvc_project_the_read_commands_say_so_and_change_nothing(
        tmp_path, capsys, monkeypatch, argv):
    """`recsys-ct status` used to run `dvc init` in the folder it was given: a read-only
    command must not, and neither may the ones that only make sense on an existing DVC
    project. With no project folder at all, one line too, not a traceback."""
    folder = tmp_path / "not-dvc"
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "notes.txt").write_text("mine\n")
    before = _tree(folder)
    monkeypatch.setenv("RECSYS_ROOT", str(folder))
    assert ct.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {folder.resolve()} is not a DVC project (no .dvc/ folder): run it "
                   "from the project's clone (or point $RECSYS_ROOT at it), or `dvc init` "
                   "first\n")
    assert not (folder / ".dvc").exists() and _tree(folder) == before
    assert not (tmp_path / "xdg-cache").exists()  # no default remote folder either

    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path / "nowhere"))
    assert ct.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: no project folder {tmp_path / 'nowhere'}")
    assert not (tmp_path / "nowhere").exists()


def test_remote_url_is_the_one_command_besides_run_and_push_that_initialises_and_says_so(
        tmp_path, capsys, monkeypatch):
    folder = tmp_path / "clone"
    folder.mkdir()
    git(folder, "init", "-q")
    monkeypatch.setenv("RECSYS_ROOT", str(folder))
    assert ct.main(["remote", str(tmp_path / "team")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == str((tmp_path / "team").resolve())
    assert f"initialised DVC in {folder.resolve()} (commit .dvc/ and .dvcignore)" in err
    assert versioning.configured_remote(project_paths(folder)) == str((tmp_path / "team")
                                                                     .resolve())


def test_status_and_remote_write_nothing_even_with_an_override_remote(tmp_path, capsys,
                                                                      monkeypatch):
    """`status` used to write the override to `.dvc/config.local` (the clone's remote from
    then on), add lines to `.dvcignore` and create the remote folder; it reports against
    the override remote (which holds nothing yet) and changes nothing."""
    paths = init_project(tmp_path / "p")
    titles, _, _ = store_with_new_quarter(paths)
    _, model_df = load_store(paths)
    register(paths, FakeRecommender().fit(model_df, titles), PARAMS)
    versioning.push(paths, remote=str(tmp_path / "remote"), log=_quiet)
    (paths.root / ".dvc" / "config.local").unlink()
    commit_all(paths, "pushed")
    before = _tree(paths.root)
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    monkeypatch.setenv(versioning.ENV_REMOTE, str(tmp_path / "elsewhere"))
    capsys.readouterr()  # DVC's own hints from the push ("To track the changes with git")

    assert ct.main(["status"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["remote_url"] == str((tmp_path / "elsewhere").resolve())
    assert found["workspace"] == {} and found["remote"]  # nothing of it in that remote
    assert ct.main(["remote"]) == 0
    assert capsys.readouterr().out == str((tmp_path / "elsewhere").resolve()) + "\n"
    assert _tree(paths.root) == before and git(paths.root, "status", "--porcelain") == ""
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "xdg-cache").exists()

    monkeypatch.delenv(versioning.ENV_REMOTE)
    assert ct.main(["status"]) == 0  # the default local remote: absent, so holds nothing
    assert json.loads(capsys.readouterr().out)["remote"]
    assert _tree(paths.root) == before and not (tmp_path / "xdg-cache").exists()


def test_a_remote_dvc_cannot_use_or_a_broken_config_is_one_line_not_a_traceback(
        tmp_path, capsys, monkeypatch):
    paths = init_project(tmp_path / "p")
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    before = _tree(paths.root)

    assert ct.main(["remote", str(a_file / "sub")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: the DVC remote {a_file / 'sub'} (from the command line) is not a folder: "
        f"{a_file} is a file")
    monkeypatch.setenv(versioning.ENV_REMOTE, str(a_file))
    for argv in (["status"], ["push"], ["pull"], ["run", "--new-ratings", str(a_file)]):
        assert ct.main(argv) == 2, argv
        assert capsys.readouterr().err.startswith(
            f"error: the DVC remote {a_file} (from $RECSYS_DVC_REMOTE) is not a folder"), argv
    if importlib.util.find_spec("dvc_gs") is None:  # the plugin of the CI workflow's remote
        monkeypatch.setenv(versioning.ENV_REMOTE, "gs://bucket/dvc")
        assert ct.main(["status"]) == 2
        assert "requires 'dvc-gs'" in capsys.readouterr().err
    monkeypatch.delenv(versioning.ENV_REMOTE)
    assert _tree(paths.root) == before

    with (paths.root / ".dvc" / "config").open("a") as config:
        config.write("[[[not ini\n")
    assert ct.main(["status"]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: cannot read the DVC configuration in {paths.root / '.dvc'}")


@pytest.mark.parametrize(("argv", "usage", "message"), [
    (["--bogus"], "usage: recsys-ct [-h]", "recsys-ct: error: unrecognized arguments: --bogus"),
    (["--bogus", "--other"], "usage: recsys-ct [-h]",
     "recsys-ct: error: unrecognized arguments: --bogus --other"),
    (["status", "--bogus"], "usage: recsys-ct status [-h]",
     "recsys-ct status: error: unrecognized arguments: --bogus"),
    (["run", "--new-ratings", "x.csv", "extra"], "usage: recsys-ct run [-h] --new-ratings",
     "recsys-ct run: error: unrecognized arguments: extra"),
    (["bogus"], "usage: recsys-ct [-h]", "argument command: invalid choice: 'bogus'"),
    ([], "usage: recsys-ct [-h]", "the following arguments are required: command"),
])
def test_usage_errors_give_the_accurate_reason(argv, usage, message, capsys):
    """`recsys-ct --bogus` used to say a command was missing, not that --bogus is unknown."""
    with pytest.raises(SystemExit) as info:
        ct.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith(usage) and message in err, err
    assert "Traceback" not in err
