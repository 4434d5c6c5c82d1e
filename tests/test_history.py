"""The durable ratings history: no command drops an accepted rating.

The store is rebuilt by the cleaning step from ``data/raw`` plus ``data/history`` (every
batch ``recsys-retrain`` accepted, every hold-back). The scenario: a project cleaned from
the example raw folder, a champion, then a retrain appends new ratings, and every
command that touches the store runs — the cleaning rebuild, a hold-back, the replay of
the held-back file, a rollback — each followed by a rebuild; after each, every accepted
rating is counted in the store (or, while held back, in the held-back file).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from store_fixtures import fake_trainer

from recsys_utils.data import store
from recsys_utils.data.cleaning import build_processed
from recsys_utils.data.example import write_example
from recsys_utils.data.tables import read_table
from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle import registry, retrain
from recsys_utils.paths import project_paths

PARAMS = {"rating_params": {"model": "fake"}, "ranking_params": {}, "seed": 42}
QUIET = {"log": lambda line: None}


def _keys(df: pd.DataFrame) -> set[tuple]:
    return set(store.rating_keys(df))


def _raw_keys(path) -> set[tuple]:
    """The rating keys of a file in the raw layout ``userId,rating,timestamp,movieId``."""
    raw = pd.read_csv(path, dtype={"movieId": str})
    return _keys(pd.DataFrame({"user_id": raw["userId"], "item_id": raw["movieId"],
                               "timestamp": pd.to_datetime(raw["timestamp"], unit="s"),
                               "score": raw["rating"]}))


def _rebuild(paths):
    return build_processed(paths=paths, verbose=False)


@pytest.fixture
def project(tmp_path):
    """The example raw folder cleaned into a store, a champion, and 50 new ratings
    (10 new users rating existing titles after the last stored rating)."""
    paths = project_paths(tmp_path)
    write_example(paths.raw)
    cleaned = _rebuild(paths)
    ratings = read_table("ratings", paths)
    model = read_table("model", paths)
    registry.register_model(fake_trainer()(model, cleaned.titles, PARAMS), params=PARAMS,
                            metrics={}, data_fingerprint=data_fingerprint(model), paths=paths)
    rng = np.random.default_rng(0)
    last = int(pd.to_datetime(ratings["timestamp"]).max().timestamp())
    items = ratings["item_id"].drop_duplicates().to_numpy()
    new = pd.DataFrame({"userId": np.repeat(np.arange(900_001, 900_011), 5),
                        "rating": rng.integers(1, 11, 50) / 2,
                        "timestamp": last + 3600 * np.arange(1, 51),
                        "movieId": rng.choice(items, 50, replace=False)})
    csv = paths.root / "incoming.csv"
    new.to_csv(csv, index=False)
    return paths, csv, ratings


def test_no_command_drops_an_accepted_rating(project, capsys):
    paths, csv, raw_ratings = project
    n_raw = len(raw_ratings)
    counts = {"cleaned from raw": n_raw}

    record = retrain.run_retrain(csv, paths=paths, trainer=fake_trainer(), min_holdout=5,
                                 force=True, **QUIET)
    assert record["store"]["added"] == 50
    accepted = _keys(read_table("ratings", paths))
    assert len(accepted) == n_raw + 50
    counts["after the retrain"] = len(accepted)
    [history] = list(paths.history.glob("*_accepted.csv"))
    assert record["store"]["history_file"] == f"data/history/{history.name}"
    assert len(pd.read_csv(history)) == 50

    # 01 rebuilds the store from data/raw: the history brings the 50 back, row for row.
    before = read_table("ratings", paths)
    rebuilt = _rebuild(paths)
    assert data_fingerprint(read_table("ratings", paths)) == data_fingerprint(before)
    assert store.store_is_consistent(paths)
    counts["after the 01 rebuild"] = len(rebuilt.ratings)
    line = next(a for a in rebuilt.accounting if a.source_file == f"data/history/{history.name}")
    assert (line.read, line.kept, line.rejected, line.duplicates) == (50, 50, 0, 0)

    # A hold-back moves the newest ratings out (the 50 among them) into data/raw ...
    summary = retrain.hold_back(paths, days=30, trainer=fake_trainer(), **QUIET)
    held = _raw_keys(paths.root / summary["file"])
    in_store = _keys(read_table("ratings", paths))
    assert held and held.isdisjoint(in_store) and held | in_store == accepted
    # ... and a rebuild keeps them out: they are not accepted again until a retrain says so.
    rebuilt = _rebuild(paths)
    assert _keys(rebuilt.ratings) == in_store
    withheld = rebuilt.rejected_ratings["reason"] == store.HELD_BACK_REASON
    assert int(withheld.sum()) == len(held)
    assert rebuilt.accounting.totals("ratings").adds_up
    counts["held back (store + file)"] = len(in_store) + len(held)

    # Replaying the held-back file accepts them again; the rebuild keeps them.
    record = retrain.run_retrain(paths.root / summary["file"], paths=paths,
                                 trainer=fake_trainer(), min_holdout=5, force=True, **QUIET)
    assert record["store"]["added"] == len(held)
    assert _keys(read_table("ratings", paths)) == accepted
    assert _keys(_rebuild(paths).ratings) == accepted
    counts["after the replay and a rebuild"] = len(accepted)

    # A rollback moves the champion pointer only.
    with store.store_lock(paths):
        registry.rollback(None, paths)
    assert _keys(_rebuild(paths).ratings) == accepted
    counts["after a rollback and a rebuild"] = len(_keys(read_table("ratings", paths)))
    with capsys.disabled():  # the measured counts, for the report
        print("\n" + "; ".join(f"{k}: {v:,}" for k, v in counts.items()))


def test_an_increment_also_in_raw_is_a_duplicate_not_a_double_count(project):
    paths, csv, raw_ratings = project
    retrain.run_retrain(csv, paths=paths, trainer=fake_trainer(), force=True, min_holdout=5,
                        **QUIET)
    # The company's next export contains the same 50 ratings.
    (paths.raw / "ratings" / "zz_next_export.csv").write_bytes(csv.read_bytes())
    rebuilt = _rebuild(paths)
    assert len(rebuilt.ratings) == len(raw_ratings) + 50
    [line] = [a for a in rebuilt.accounting if a.source_file.startswith("data/history/")]
    assert (line.read, line.kept, line.duplicates) == (50, 0, 50)
    assert rebuilt.accounting.totals("ratings").adds_up


def test_a_hold_back_made_on_other_data_takes_nothing_out(project):
    """A hold-back left from another data set (none of its ratings are in this run's raw
    folder) is replayed as taking out nothing, with the raw ratings all kept."""
    paths, csv, raw_ratings = project
    paths.history.mkdir(parents=True, exist_ok=True)
    store.history_file(paths, "20260101T000000", store.HELD_BACK).write_text(
        "userId,rating,timestamp,movieId\n7,4.5,1600000000,zz-not-here\n", encoding="utf-8")
    rebuilt = _rebuild(paths)
    assert len(rebuilt.ratings) == len(raw_ratings)
    assert not (rebuilt.rejected_ratings["reason"] == store.HELD_BACK_REASON).any()
    assert rebuilt.accounting.totals("ratings").adds_up


def test_history_rows_keep_the_cleaning_rules(project):
    paths, csv, raw_ratings = project
    retrain.run_retrain(csv, paths=paths, trainer=fake_trainer(), force=True, min_holdout=5,
                        **QUIET)
    [history] = list(paths.history.glob("*_accepted.csv"))
    with open(history, "a", encoding="utf-8") as fh:  # a hand-edited history: a bad row
        fh.write("7,9,1600000000,nope\n")
    rebuilt = _rebuild(paths)
    assert len(rebuilt.ratings) == len(raw_ratings) + 50
    bad = rebuilt.rejected_ratings[rebuilt.rejected_ratings["source_file"]
                                   == f"data/history/{history.name}"]
    assert bad["reason"].tolist() == ["score outside 0.5-5"]


def test_the_notebooks_call_merges_the_history_too(project, tmp_path):
    """01_cleaning passes raw_dir and output_dir explicitly (data/processed)."""
    paths, csv, raw_ratings = project
    retrain.run_retrain(csv, paths=paths, trainer=fake_trainer(), force=True, min_holdout=5,
                        **QUIET)
    got = build_processed(raw_dir=paths.raw, paths=paths, output_dir=paths.processed,
                          verbose=False)
    assert len(got.ratings) == len(read_table("ratings", paths)) == len(raw_ratings) + 50
    elsewhere = build_processed(raw_dir=paths.raw, paths=paths, output_dir=tmp_path / "copy",
                                verbose=False)
    assert len(elsewhere.ratings) == len(raw_ratings)  # not the store: the raw folder alone


def test_a_dry_run_checks_the_raw_folder_alone(project):
    paths, csv, raw_ratings = project
    retrain.run_retrain(csv, paths=paths, trainer=fake_trainer(), force=True, min_holdout=5,
                        **QUIET)
    assert len(build_processed(paths=paths, write=False, verbose=False).ratings) == len(
        raw_ratings)
    assert len(build_processed(paths=paths, write=False, history=True,
                               verbose=False).ratings) == len(raw_ratings) + 50


def test_an_abandoned_retrain_leaves_no_history(project, monkeypatch):
    paths, csv, raw_ratings = project

    def killed(*args, **kwargs):
        raise RuntimeError("killed before the store changed")

    monkeypatch.setattr(retrain, "append_ratings", killed)
    with pytest.raises(RuntimeError):
        retrain.run_retrain(csv, paths=paths, trainer=fake_trainer(), force=True,
                            min_holdout=5, **QUIET)
    assert len(list(paths.history.glob("*_accepted.csv"))) == 1  # written, store unchanged
    monkeypatch.undo()
    retrain.recover(paths, **QUIET)
    assert list(paths.history.glob("*.csv")) == []
    assert len(_rebuild(paths).ratings) == len(raw_ratings)
