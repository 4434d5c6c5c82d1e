"""Crash injection: kill a retrain, a hold-back, a rollback and a promotion at every durable write.

No timing: ``recsys_utils.atomic`` counts durable writes and the fault hook
(``RECSYS_CRASH_AT_WRITE=k``) makes the process ``os._exit`` at the k-th one, after its
temporary file is complete and before it replaces anything — a ``kill -9`` at that
exact moment. For each operation the harness runs it once cleanly to count its writes
N (and name them), then, for every k in 1..N, on a fresh copy of the same starting
state, runs it in a forked child that dies at write k; then runs recovery (what every
command that touches the store does first) and checks

* the invariant (``recsys_utils.lifecycle.retrain``'s docstring): store tables agree
  on one ratings fingerprint and equal what derives from the ratings; the champion
  names a verified version trained on the store, or the champion before; no pending
  record, staging folder, temporary file or orphan version;
* that the state is the old one or the one of the uninterrupted run, and if old, that
  running the operation again reaches the uninterrupted run's state;
* that the ratings history agrees with the store: replaying ``data/history`` over the
  starting ratings (what the cleaning step does) gives exactly the store's ratings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from store_fixtures import build_store, fake_trainer, make_ratings, make_titles, to_raw_csv

from recsys_utils import atomic
from recsys_utils.data import store
from recsys_utils.data.tables import read_table
from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle import registry, retrain
from recsys_utils.paths import ProjectPaths, project_paths

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the harness forks")

PARAMS = {"rating_params": {"model": "fake"}, "ranking_params": {}, "seed": 42}
QUIET = {"log": lambda line: None}


# --------------------------------------------------------------------------- starting states


def _store_with_champion(root: Path) -> ProjectPaths:
    """30 users x 8 titles; the newest 90 days held out as ``data/raw/new.csv`` (3 bad rows)."""
    paths = project_paths(root)
    titles = make_titles(8)
    ratings = make_ratings(n_users=30, n_items=8, seed=1, days=360)
    ratings = ratings.sort_values("timestamp", ignore_index=True)
    cut = ratings["timestamp"].max() - pd.Timedelta(days=90)
    build_store(paths, ratings[ratings["timestamp"] < cut], titles)
    _, model_df = store.load_store(paths)
    registry.register_model(fake_trainer()(model_df, titles, PARAMS), params=PARAMS,
                            metrics={"rmse": 1.0}, data_fingerprint=data_fingerprint(model_df),
                            paths=paths, notes="first champion")
    paths.raw.mkdir(parents=True, exist_ok=True)
    to_raw_csv(ratings[ratings["timestamp"] >= cut], paths.raw / "new.csv")
    with open(paths.raw / "new.csv", "a", encoding="utf-8") as fh:
        fh.write("abc,4.0,1600000000,ml1\n1,9,1600000000,ml1\n1,4.0,4000000000,ml1\n")
    return paths


def _with_versions(root: Path) -> ProjectPaths:
    """The store plus champions v0001 -> v0002 -> v0003 and an unpromoted v0004."""
    paths = _store_with_champion(root)
    _, model_df = store.load_store(paths)
    titles = make_titles(8)
    for shift, promote in ((0.1, True), (0.2, True), (0.3, False)):
        registry.register_model(fake_trainer(shift)(model_df, titles, PARAMS), params=PARAMS,
                                metrics={"rmse": 1.0 + shift},
                                data_fingerprint=data_fingerprint(model_df), paths=paths,
                                promote=promote, notes=f"shift {shift}")
    return paths


NEVER = {"psi_threshold": float("inf"), "error_increase": float("inf"),
         "new_user_threshold": float("inf")}


def _retrain(**kw) -> Callable[[ProjectPaths], object]:
    kw.setdefault("trainer", fake_trainer())
    kw.setdefault("min_holdout", 5)

    def run(paths: ProjectPaths) -> object:
        return retrain.run_retrain(paths.raw / "new.csv", paths=paths, **QUIET, **kw)
    return run


def _rollback(paths: ProjectPaths) -> object:
    os.environ["RECSYS_ROOT"] = str(paths.root)  # the CLI reads the project from it
    return retrain.main(["--rollback"])


def _register_and_promote(paths: ProjectPaths) -> object:
    _, model_df = store.load_store(paths)
    return registry.register_model(
        fake_trainer(0.4)(model_df, make_titles(8), PARAMS), params=PARAMS, metrics={},
        data_fingerprint=data_fingerprint(model_df), paths=paths, notes="registered")


#: name -> (starting state, operation, expected number of durable writes)
OPERATIONS = {
    "retrain, challenger promoted": (_store_with_champion,
                                     _retrain(tolerance=10.0, force=True), 11),
    "retrain, champion kept": (_store_with_champion,
                               _retrain(trainer=fake_trainer(shift=1.5), force=True), 9),
    "retrain, holdout too small (append only)": (_store_with_champion,
                                                 _retrain(min_holdout=10_000, force=True), 7),
    "retrain, policy says no retrain (append only)": (_store_with_champion,
                                                      _retrain(thresholds=NEVER), 7),
    "hold-back": (_store_with_champion,
                  lambda paths: retrain.hold_back(paths, days=30, trainer=fake_trainer(),
                                                  **QUIET), 11),
    "rollback (walk back one champion)": (_with_versions, _rollback, 2),
    "promotion of a registered version": (
        _with_versions, lambda paths: registry.promote("v0004", paths), 2),
    "registration with promotion (03_modeling)": (_with_versions, _register_and_promote, 4),
}


# --------------------------------------------------------------------------- the harness


def _in_child(op: Callable[[ProjectPaths], object], paths: ProjectPaths, crash_at: int | None,
              write_log: Path | None = None) -> int:
    """Run ``op`` in a forked process dying at durable write ``crash_at``; its exit code."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            atomic.reset_durable_writes()
            os.environ.pop(atomic.CRASH_ENV, None)
            if crash_at is not None:
                os.environ[atomic.CRASH_ENV] = str(crash_at)
            if write_log is not None:
                os.environ[atomic.WRITE_LOG_ENV] = str(write_log)
            op(paths)
        except BaseException:  # noqa: BLE001 - report and fail the child
            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.startswith(".staging-") or p.name.endswith(".tmp"))


def _records(paths: ProjectPaths) -> list[dict]:
    folder = paths.reports / "decisions"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def snapshot(paths: ProjectPaths) -> dict:
    """Everything an operation may change, minus what differs between two runs by nature
    (time stamps, decision record names, the rejected-rows files of validation)."""
    tables = {name: data_fingerprint(read_table(name, paths))
              for name in ("titles", "model", "analytics")}
    ratings = read_table("ratings", paths)  # appended rows name their history file (a stamp)
    ratings["source_file"] = ratings["source_file"].str.replace(r"\d{8}T\d+Z", "<stamp>",
                                                                regex=True)
    tables["ratings"] = data_fingerprint(ratings)
    versions = {}
    for version in registry.list_versions(paths):
        m = registry.read_manifest(version, paths)
        versions[version] = [m["data_fingerprint"], re.sub(r"\d{8}T\d+Z", "<stamp>", m["notes"]),
                             m["params"],
                             m["files"]["model.pkl"]["sha256"]]
    pointer = json.loads((paths.models / "champion.json").read_text())
    history = [json.loads(line)["version"] for line in
               (paths.models / "champion_history.jsonl").read_text().splitlines()]
    decisions = [(r["decision"], r["status"].split(" ")[0]) for r in _records(paths)
                 if r["decision"] != "abandoned"]
    raw = {p.name: p.read_bytes() for p in sorted(paths.raw.glob("*.csv"))}
    ratings_history = {re.sub(r"\d{8}T\d+Z", "<stamp>", p.name): p.read_bytes()
                       for p in sorted(paths.history.glob("*"))} if paths.history.is_dir() else {}
    return {"tables": tables, "versions": versions,
            "pointer": [pointer["version"], pointer.get("earlier")], "history": history,
            "decisions": decisions, "raw": raw, "ratings_history": ratings_history}


def check_invariant(paths: ProjectPaths, champion_before: str,
                    start: pd.DataFrame | None = None) -> None:
    """The invariant of ``recsys_utils.lifecycle.retrain`` (raises AssertionError); with
    ``start`` (the ratings before any operation), also that the history replayed over them
    gives the store's ratings (what a rebuild by the cleaning step would give)."""
    assert store.store_is_consistent(paths)
    ratings, model = store.load_store(paths)
    if start is not None:
        replayed = store.merge_history(start, [], paths, known_items=None).ratings
        assert data_fingerprint(replayed) == data_fingerprint(ratings), "history != store"
    assert data_fingerprint(model) == data_fingerprint(store.derive_model(ratings))
    analytics = read_table("analytics", paths)
    derived = store.derive_analytics(read_table("titles", paths), model)
    assert data_fingerprint(analytics) == data_fingerprint(derived)
    champion = registry.champion_version(paths)
    _, manifest = registry.load_version(champion, paths)  # checksums verified
    assert (manifest["data_fingerprint"] == data_fingerprint(model)
            or champion == champion_before), (champion, champion_before)
    records = _records(paths)
    assert all(r["status"] != "pending" for r in records)
    assert _leftovers(paths.root) == []
    abandoned = {r["stamp"] for r in records if r["decision"] == "abandoned"}
    stamps = {r["stamp"] for r in records}
    for version in registry.list_versions(paths):
        link = registry.read_manifest(version, paths).get("decision_record")
        if link:
            assert Path(link).stem in stamps - abandoned, f"orphan {version}"


def _run_harness(name: str, tmp_path: Path) -> dict:
    make_state, op, expected_writes = OPERATIONS[name]
    template = make_state(tmp_path / "template")
    champion_before = registry.champion_version(template)
    old = snapshot(template)
    start = read_table("ratings", template)

    def fresh(label: str) -> ProjectPaths:
        shutil.copytree(template.root, tmp_path / label)
        return project_paths(tmp_path / label)

    clean, write_log = fresh("clean"), tmp_path / "writes.log"
    assert _in_child(op, clean, None, write_log) == 0
    points = [line.split("\t")[1] for line in write_log.read_text().splitlines()]
    assert len(points) == expected_writes, points
    new = snapshot(clean)
    assert new != old
    check_invariant(clean, champion_before, start)

    outcomes = {}
    for k in range(1, len(points) + 1):
        paths = fresh(f"crash{k}")
        assert _in_child(op, paths, k) == atomic.CRASH_EXIT_CODE, f"write {k} did not crash"
        retrain.recover(paths, **QUIET)  # what the next command does first
        check_invariant(paths, champion_before, start)
        state = snapshot(paths)
        assert state in (old, new), f"crash at write {k} ({points[k - 1]}): a mixed state"
        outcomes[k] = "new" if state == new else "old"
        if state == old:  # rolled back: the operation run again ends where a clean run does
            assert _in_child(op, paths, None) == 0
            check_invariant(paths, champion_before, start)
            assert snapshot(paths) == new, f"rerun after a crash at write {k}"
        shutil.rmtree(paths.root)
    return {"points": points, "outcomes": outcomes}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_crash_at_any_durable_write_leaves_the_old_or_the_new_state(name, tmp_path, capsys):
    started = time.perf_counter()
    got = _run_harness(name, tmp_path)
    # Every crash point is covered, and both outcomes occur where both can.
    assert sorted(got["outcomes"]) == list(range(1, len(got["points"]) + 1))
    assert "old" in got["outcomes"].values()
    olds = [k for k, state in got["outcomes"].items() if state == "old"]
    with capsys.disabled():  # a measured figure, not asserted
        print(f"\n{name}: {len(got['points'])} crash points (old state after a crash at "
              f"writes {olds}, new after the others) in {time.perf_counter() - started:.1f}s")


def _crash_point(points: list[str], name: str) -> int:
    return next(k for k, target in enumerate(points, 1) if target.endswith(name))


def test_the_two_reproductions_of_issue_11_end_consistent(tmp_path):
    """Killed right after ratings.parquet is replaced (i.e. at the write of model.parquet),
    and right after model.parquet is replaced (at analytics.parquet): the store ends
    consistent with the new ratings, the decision is kept, and a rerun says "skipped"."""
    make_state, op, _ = OPERATIONS["retrain, challenger promoted"]
    template = make_state(tmp_path / "template")
    clean = project_paths(shutil.copytree(template.root, tmp_path / "clean"))
    log = tmp_path / "writes.log"
    assert _in_child(op, clean, None, log) == 0
    points = [line.split("\t")[1] for line in log.read_text().splitlines()]
    new = snapshot(clean)
    for label, after in (("after ratings.parquet", "model.parquet"),
                         ("after model.parquet", "analytics.parquet")):
        paths = project_paths(shutil.copytree(template.root, tmp_path / label.replace(" ", "_")))
        k = _crash_point(points, after)
        assert _in_child(op, paths, k) == atomic.CRASH_EXIT_CODE
        assert not store.store_is_consistent(paths)  # the torn state the issue found
        record = retrain.run_retrain(paths.raw / "new.csv", paths=paths, min_holdout=5, **QUIET)
        assert record["decision"] == "skipped"  # the crashed run's ratings are in ...
        check_invariant(paths, "v0001")
        state = snapshot(paths)
        assert state["tables"] == new["tables"]  # ... and model and analytics follow them
        assert state["pointer"] == new["pointer"]  # the promotion was finished
        [recovered] = [r for r in _records(paths) if r["status"] == "done (recovered)"]
        assert recovered["decision"] == "promoted"


def test_a_crash_during_recovery_is_recovered_too(tmp_path):
    """Recovery makes durable writes of its own (tables, pointer, history, record): kill
    it at each of them; the next recovery still ends in the uninterrupted run's state."""
    make_state, op, _ = OPERATIONS["retrain, challenger promoted"]
    template = make_state(tmp_path / "template")
    clean = project_paths(shutil.copytree(template.root, tmp_path / "clean"))
    log = tmp_path / "writes.log"
    assert _in_child(op, clean, None, log) == 0
    points = [line.split("\t")[1] for line in log.read_text().splitlines()]
    new = snapshot(clean)
    crashed = tmp_path / "crashed"
    shutil.copytree(template.root, crashed)
    assert _in_child(op, project_paths(crashed), _crash_point(points, "model.parquet")) == (
        atomic.CRASH_EXIT_CODE)

    def recover(paths):
        retrain.recover(paths, **QUIET)

    recovery_log = tmp_path / "recovery.log"
    probe = project_paths(shutil.copytree(crashed, tmp_path / "probe"))
    assert _in_child(recover, probe, None, recovery_log) == 0
    n = len(recovery_log.read_text().splitlines())
    assert n == 5  # model, analytics, pointer, history, record
    for k in range(1, n + 1):
        paths = project_paths(shutil.copytree(crashed, tmp_path / f"recovery{k}"))
        assert _in_child(recover, paths, k) == atomic.CRASH_EXIT_CODE
        retrain.recover(paths, **QUIET)
        check_invariant(paths, "v0001")
        assert snapshot(paths) == new, f"recovery killed at its write {k}"
