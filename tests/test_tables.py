"""The processed-table contract: one reader turns every kind of bad file into one clear error.

The start-up cases of issue 11 are checked where a user meets them: ``recsys-serve``
prints one ``error: ...`` line naming the file and what to run, exits 2, no traceback.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from store_fixtures import FakeRecommender, build_store, make_ratings, make_titles

from recsys_utils.data import tables
from recsys_utils.data.cleaning import load_processed
from recsys_utils.errors import DataError
from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle import registry, retrain
from recsys_utils.paths import project_paths
from recsys_utils.serving import app
from recsys_utils.serving.state import load_state


@pytest.fixture()
def served(tmp_path):
    """A project the API starts on: processed tables and a champion with a ``recommend``."""
    paths = project_paths(tmp_path)
    titles = make_titles(8)
    build_store(paths, make_ratings(), titles)
    model_df = tables.read_table("model", paths)
    registry.register_model(FakeRecommender().fit(model_df, titles), params={}, metrics={},
                            data_fingerprint=data_fingerprint(model_df), paths=paths)
    load_state(paths)  # the starting state is good: each case below breaks one thing
    return paths


def _processed(name):
    return lambda p: p.processed / name


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _rewrite(name, change):
    def damage(paths):
        path = paths.processed / f"{name}.parquet"
        change(pd.read_parquet(path)).to_parquet(path, index=False)
    return damage


def _manifest(paths):
    return paths.models / "v0001" / "manifest.json"


def _pointer(paths):
    return paths.models / "champion.json"


#: (case, how to break the good state, what the one-line error must say)
START_UP_CASES = [
    # the six cases that printed tracebacks before issue 11
    ("random bytes in ratings.parquet",
     lambda p: _processed("ratings.parquet")(p).write_bytes(os.urandom(4096)),
     "ratings.parquet is not a readable parquet file"),
    ("0-byte titles.parquet", lambda p: _processed("titles.parquet")(p).write_bytes(b""),
     "titles.parquet is empty (0 bytes)"),
    ("truncated analytics.parquet", lambda p: _truncate(_processed("analytics.parquet")(p)),
     "analytics.parquet is not a readable parquet file"),
    ("model.parquet with wrong columns",
     _rewrite("model", lambda df: df.rename(columns={"user": "uid"})),
     "model.parquet lacks the columns ['user']"),
    ("manifest.json not JSON", lambda p: _manifest(p).write_text("{not json"),
     "manifest.json is not valid JSON"),
    ("manifest.json a JSON list", lambda p: _manifest(p).write_text("[1, 2]"),
     "manifest.json holds a JSON list, not an object"),
    # more bad content the one reader catches
    ("a column of the wrong type",
     _rewrite("ratings", lambda df: df.assign(user_id="abc")),
     "ratings.parquet: column 'user_id' holds"),
    ("a count that cannot be an integer",
     _rewrite("analytics", lambda df: df.assign(n_ratings=float("nan"))),
     "analytics.parquet has a column of the wrong type"),
    ("manifest.json binary", lambda p: _manifest(p).write_bytes(os.urandom(2048)),
     "manifest.json is not valid JSON"),
    ("champion.json a JSON list", lambda p: _pointer(p).write_text("[]"),
     "champion.json holds a JSON list, not an object"),
    ("champion.json names a path", lambda p: _pointer(p).write_text(
        json.dumps({"version": "../models/v0001"})), "champion.json names no version"),
    # the cases that already gave one line
    ("no processed tables", lambda p: [f.unlink() for f in p.processed.glob("*.parquet")],
     "titles.parquet not found"),
    ("missing model.parquet", lambda p: _processed("model.parquet")(p).unlink(),
     "model.parquet not found"),
    ("no champion", lambda p: _pointer(p).unlink(), "no champion model"),
    ("champion.json not JSON", lambda p: _pointer(p).write_text("{"),
     "champion.json is not valid JSON"),
    ("champion names an unknown version",
     lambda p: _pointer(p).write_text(json.dumps({"version": "v0042"})),
     "no model version 'v0042'"),
    ("model.pkl tampered", lambda p: (p.models / "v0001" / "model.pkl").write_bytes(b"x"),
     "checksum mismatch"),
    ("model.pkl missing", lambda p: (p.models / "v0001" / "model.pkl").unlink(), "is missing"),
    ("champion not a recommender", lambda p: registry.register_model(
        {"not": "a model"}, params={}, metrics={}, data_fingerprint="f", paths=p),
     "not a Recommender"),
]


@pytest.mark.parametrize(("case", "damage", "message"), START_UP_CASES,
                         ids=[c[0] for c in START_UP_CASES])
def test_start_up_refuses_bad_state_with_one_line(served, capsys, case, damage, message):
    damage(served)
    assert app.main(["--root", str(served.root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    assert err.count("\n") == 1  # one line, of text not data: paths apart, short
    assert len(err.replace(str(served.root), "")) < 330
    assert all(c.isprintable() for c in err.rstrip("\n")), "quotes only printable text"
    if "parquet" in message or "manifest" in message:
        assert "make pipeline" in err or "rollback" in err


def test_retrain_refuses_a_damaged_store_with_one_line(served, capsys, monkeypatch):
    (served.processed / "ratings.parquet").write_bytes(os.urandom(1000))
    csv = served.raw / "new.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text("userId,rating,timestamp,movieId\n1,4,1600000000,ml1\n")
    monkeypatch.setenv("RECSYS_ROOT", str(served.root))
    assert retrain.main(["--new-ratings", str(csv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ratings.parquet" in err and "make pipeline" in err


def test_read_table_casts_to_the_documented_dtypes(served):
    ratings = tables.read_table("ratings", served)
    assert str(ratings["user_id"].dtype) == "int32"
    assert str(ratings["timestamp"].dtype) == "datetime64[s]"
    data = load_processed(served)
    assert list(data.model.columns) == ["user", "item", "score", "timestamp"]


def test_read_user_ids_is_the_checked_user_column(served):
    users = tables.read_user_ids(served)
    assert str(users.dtype) == "int32"
    assert users.tolist() == tables.read_table("ratings", served)["user_id"].tolist()
    _rewrite("ratings", lambda df: df.drop(columns="user_id"))(served)
    with pytest.raises(DataError, match=r"ratings.parquet lacks the columns \['user_id'\]"):
        tables.read_user_ids(served)
    _rewrite("ratings", lambda df: df.assign(user_id="abc"))(served)
    with pytest.raises(DataError, match="column 'user_id' holds"):
        tables.read_user_ids(served)


def test_check_table_reads_the_footer_alone(served):
    tables.check_table("model", served)
    _rewrite("model", lambda df: df.rename(columns={"score": "rating"}))(served)
    with pytest.raises(DataError, match=r"model.parquet lacks the columns \['score'\]"):
        tables.check_table("model", served)
    _truncate(served.processed / "model.parquet")
    with pytest.raises(DataError, match="model.parquet is not a readable parquet file"):
        tables.check_table("model", served)


def test_check_model_table_is_the_one_column_check():
    good = pd.DataFrame({"user": [1], "item": ["a"], "score": [4.0],
                         "timestamp": pd.to_datetime(["2020-01-01"])})
    tables.check_model_table(good)
    with pytest.raises(DataError, match=r"lacks the columns \['score', 'timestamp'\]"):
        tables.check_model_table(good[["user", "item"]], "my table")


def test_written_tables_carry_the_ratings_stamp(tmp_path):
    ratings = make_ratings(n_users=2, n_items=2)
    fp = tables.ratings_fingerprint(ratings)
    assert fp == tables.ratings_fingerprint(ratings.sample(frac=1.0, random_state=0))
    path = tables.write_table(tmp_path / "r.parquet", ratings, fp)
    assert tables.read_stamp(path) == fp
    assert tables.read_stamp(tables.write_table(tmp_path / "t.parquet", ratings)) is None
    assert tables.read_stamp(tmp_path / "missing.parquet") is None
    assert len(pd.read_parquet(path)) == len(ratings)


def test_read_json_object(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"a": 1}')
    assert tables.read_json_object(path) == {"a": 1}
    path.write_text('"text"')
    with pytest.raises(DataError, match="holds a JSON str, not an object"):
        tables.read_json_object(path)
    with pytest.raises(DataError, match="not found"):
        tables.read_json_object(tmp_path / "none.json")


def test_bad_input_is_quoted_short_and_printable():
    from recsys_utils.errors import excerpt

    assert excerpt("userId,rating") == "'userId,rating'"
    quoted = excerpt(bytes(range(256)) * 4)
    assert len(quoted) <= 45 and quoted.endswith("...'")
    assert all(c.isprintable() for c in quoted)
    assert excerpt("a" * 41, 40) == "'" + "a" * 40 + "...'"
