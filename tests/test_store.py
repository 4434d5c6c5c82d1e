"""The ratings store: idempotent, atomic appends that keep model and analytics consistent."""

from __future__ import annotations

import pandas as pd
import pytest
from store_fixtures import build_store, make_ratings, make_titles

from recsys_utils.data import store
from recsys_utils.errors import DataError
from recsys_utils.paths import project_paths


@pytest.fixture()
def paths(tmp_path):
    return project_paths(tmp_path)


@pytest.fixture()
def split():
    ratings = make_ratings()
    ratings = ratings.sort_values("timestamp", ignore_index=True)
    return ratings.iloc[:40].reset_index(drop=True), ratings.iloc[40:].reset_index(drop=True)


def _read(paths, name):
    return pd.read_parquet(paths.processed / name)


def test_append_adds_new_rows_and_updates_derived_tables(paths, split):
    old, new = split
    build_store(paths, old)
    result = store.append_ratings(new, paths)
    assert (result.received, result.added, result.already_present) == (8, 8, 0)
    assert (result.total_before, result.total_after) == (40, 48)
    assert len(_read(paths, "ratings.parquet")) == 48
    model = _read(paths, "model.parquet")
    assert list(model.columns) == ["user", "item", "score", "timestamp"]
    assert len(model) == 48
    analytics = _read(paths, "analytics.parquet")
    full = pd.concat([old, new])
    expected = full.groupby("item_id")["score"].agg(["mean", "size"])
    got = analytics.set_index("item_id")
    assert got.loc["ml1", "n_ratings"] == expected.loc["ml1", "size"]
    assert got.loc["ml1", "mean_score"] == pytest.approx(expected.loc["ml1", "mean"], abs=1e-6)
    assert result.added_rows["item_id"].tolist() == new["item_id"].tolist()


def test_append_twice_adds_nothing_the_second_time(paths, split):
    old, new = split
    build_store(paths, old)
    store.append_ratings(new, paths)
    before = (paths.processed / "ratings.parquet").stat().st_mtime_ns
    again = store.append_ratings(new, paths)
    assert again.added == 0
    assert again.already_present == len(new)
    assert again.written == ()
    assert len(_read(paths, "ratings.parquet")) == 48
    assert (paths.processed / "ratings.parquet").stat().st_mtime_ns == before


def test_duplicates_within_the_batch_counted_once(paths, split):
    old, new = split
    build_store(paths, old)
    batch = pd.concat([new, new.iloc[:3], old.iloc[:2]], ignore_index=True)
    result = store.append_ratings(batch, paths)
    assert result.received == 13
    assert result.duplicates_in_batch == 3
    assert result.already_present == 2
    assert result.added == 8
    assert result.received == result.duplicates_in_batch + result.already_present + result.added


def test_same_key_with_other_dtypes_is_recognised(paths, split):
    old, _ = split
    build_store(paths, old)
    variant = old.iloc[:5].copy()
    variant["user_id"] = variant["user_id"].astype("int64")
    variant["score"] = variant["score"].astype("float64")
    variant["timestamp"] = pd.to_datetime(variant["timestamp"]).astype("datetime64[ns]")
    variant["source_file"] = "another_file.csv"  # the source does not make a rating new
    assert store.append_ratings(variant, paths).added == 0


def test_a_different_score_is_a_new_rating(paths, split):
    old, _ = split
    build_store(paths, old)
    changed = old.iloc[:1].copy()
    changed["score"] = 5.0 if changed["score"].iloc[0] != 5.0 else 4.5
    assert store.append_ratings(changed, paths).added == 1


def test_crash_after_temporary_write_leaves_old_store_intact(paths, split, monkeypatch):
    old, new = split
    build_store(paths, old)
    snapshot = {name: _read(paths, name) for name in
                ("ratings.parquet", "model.parquet", "analytics.parquet")}

    def crash(src, dst):
        raise OSError("simulated crash after the temporary write")

    monkeypatch.setattr(store.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.append_ratings(new, paths)
    monkeypatch.undo()
    for name, table in snapshot.items():
        pd.testing.assert_frame_equal(_read(paths, name), table)
    leftovers = [p.name for p in paths.processed.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    # The store still works: the same batch is then appended in full.
    assert store.append_ratings(new, paths).added == len(new)


def test_crash_between_files_is_repaired_by_the_next_append(paths, split, monkeypatch):
    old, new = split
    build_store(paths, old)
    real_replace = store.os.replace
    calls = []

    def replace_then_crash(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # ratings.parquet replaced, crash before model.parquet
            raise OSError("simulated crash between two files")
        return real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace_then_crash)
    with pytest.raises(OSError):
        store.append_ratings(new, paths)
    monkeypatch.undo()
    assert len(_read(paths, "ratings.parquet")) == 48
    assert len(_read(paths, "model.parquet")) == 40  # stale but complete and readable
    again = store.append_ratings(new, paths)
    assert again.added == 0
    assert again.repaired
    assert len(_read(paths, "model.parquet")) == 48


def test_remove_ratings(paths, split):
    old, new = split
    build_store(paths, pd.concat([old, new], ignore_index=True))
    assert store.remove_ratings(new, paths) == len(new)
    assert len(_read(paths, "model.parquet")) == 40
    assert store.remove_ratings(new, paths) == 0


def test_missing_store_is_a_data_error(paths, split):
    with pytest.raises(DataError, match="make pipeline"):
        store.append_ratings(split[1], paths)


def test_missing_columns_is_a_data_error(paths, split):
    build_store(paths, split[0])
    with pytest.raises(DataError, match="columns"):
        store.append_ratings(split[1].drop(columns=["score"]), paths)


def test_derive_analytics_counts_each_user_once_and_leaves_unrated_titles_empty():
    titles = make_titles(3)
    # user 1 re-rated ml1 (4 -> 5): one rating per user and title, the latest, as the model
    ratings = pd.DataFrame({"user_id": [1, 2, 1], "item_id": ["ml1", "ml1", "ml1"],
                            "score": [4.0, 3.0, 5.0],
                            "timestamp": pd.to_datetime(["2020-01-01", "2020-01-02",
                                                         "2020-01-03"]),
                            "source_file": "x", "line": [2, 3, 4]})
    out = store.derive_analytics(titles, store.derive_model(ratings)).set_index("item_id")
    assert out.loc["ml1", "mean_score"] == pytest.approx(4.0)
    assert out.loc["ml1", "n_ratings"] == 2
    assert pd.isna(out.loc["ml2", "mean_score"])
    assert out.loc["ml2", "n_ratings"] == 0


def test_a_later_re_rating_replaces_the_opinion_in_the_model_table(paths, split):
    old, _ = split
    build_store(paths, old)
    first = old.iloc[[0]]
    later = first.copy()
    later["timestamp"] = pd.to_datetime(later["timestamp"]) + pd.Timedelta(days=400)
    later["score"] = 0.5 if first["score"].iloc[0] != 0.5 else 1.0
    assert store.append_ratings(later, paths).added == 1
    assert len(_read(paths, "ratings.parquet")) == 41  # the log keeps both ratings
    model = _read(paths, "model.parquet")
    assert len(model) == 40                            # the model sees the latest only
    row = model[(model["user"] == first["user_id"].iloc[0])
                & (model["item"] == first["item_id"].iloc[0])]
    assert row["score"].tolist() == [later["score"].iloc[0]]


def test_appending_equals_rebuilding_from_all_ratings(paths, split):
    from recsys_utils.data.cleaning import build_model_table
    from recsys_utils.fingerprint import data_fingerprint

    old, new = split
    build_store(paths, old)
    store.append_ratings(new, paths)
    rebuilt = build_model_table(pd.concat([old, new], ignore_index=True))
    assert data_fingerprint(_read(paths, "model.parquet")) == data_fingerprint(rebuilt)


# --------------------------------------------------------------------------- stamps and recovery
def test_the_three_tables_carry_the_same_ratings_stamp(paths, split):
    from recsys_utils.data.tables import ratings_fingerprint, read_stamp

    old, new = split
    build_store(paths, old)
    assert store.store_is_consistent(paths)
    store.append_ratings(new, paths)
    stamps = {read_stamp(paths.processed / n) for n in
              ("ratings.parquet", "model.parquet", "analytics.parquet")}
    assert stamps == {ratings_fingerprint(_read(paths, "ratings.parquet"))}


def test_recover_store_rebuilds_stale_tables_and_removes_temporaries(paths, split, monkeypatch):
    old, new = split
    build_store(paths, old)
    real_replace = store.os.replace
    calls = []

    def replace_then_crash(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # ratings and model replaced, crash before analytics
            raise OSError("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace_then_crash)
    with pytest.raises(OSError):
        store.append_ratings(new, paths)
    monkeypatch.undo()
    (paths.processed / ".model.parquet.x1y2.tmp").write_bytes(b"partial")
    assert not store.store_is_consistent(paths)  # analytics still counts 40 ratings
    assert store.recover_store(paths) == ("model.parquet", "analytics.parquet")
    assert store.store_is_consistent(paths)
    assert _read(paths, "analytics.parquet")["n_ratings"].sum() == 48
    assert not list(paths.processed.glob("*.tmp")) and not list(paths.processed.glob(".*.tmp"))
    assert store.recover_store(paths) == ()  # consistent: nothing to do


def test_tables_from_before_stamps_are_stamped_once(paths, split):
    old, _ = split
    build_store(paths, old)
    for name in ("ratings.parquet", "model.parquet", "analytics.parquet"):
        _read(paths, name).to_parquet(paths.processed / name, index=False)  # no stamp
    before = _read(paths, "model.parquet")
    assert not store.store_is_consistent(paths)
    assert store.recover_store(paths) == ("model.parquet", "analytics.parquet")
    pd.testing.assert_frame_equal(_read(paths, "model.parquet"), before)
    assert store.recover_store(paths) == ()


def test_a_waiting_command_says_what_it_waits_for(paths, monkeypatch):
    """A second process holds the lock until this one has printed that it waits."""
    import subprocess
    import sys

    release = paths.root / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib\n"
         "from recsys_utils.data.store import store_lock\n"
         "from recsys_utils.paths import project_paths\n"
         f"with store_lock(project_paths({str(paths.root)!r})):\n"
         "    print('held', flush=True)\n"
         f"    while not pathlib.Path({str(release)!r}).exists():\n"
         "        time.sleep(0.05)\n"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    said = []

    class Stderr:
        def write(self, text):
            said.append(text)
            release.touch()  # the holder lets go only once we said that we wait

        def flush(self):
            pass

    monkeypatch.setattr("sys.stderr", Stderr())
    with store.store_lock(paths):
        pass
    holder.wait(timeout=30)
    message = "".join(said)
    assert "waiting for the store lock" in message
    assert f"pid {holder.pid}" in message
