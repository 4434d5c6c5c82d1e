"""The scale data generator: deterministic, shaped like its source, clean for the cleaning step."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data import synthetic
from recsys_utils.data.cleaning import build_processed, embedded_movielens
from recsys_utils.errors import DataError
from recsys_utils.paths import project_paths

N_RATINGS = 40_000


@pytest.fixture(scope="module")
def source() -> tuple[pd.DataFrame, pd.DataFrame, str]:
    titles, model = embedded_movielens()
    return model, titles, "embedded MovieLens (test)"


@pytest.fixture(scope="module")
def generated(tmp_path_factory, source):
    out = tmp_path_factory.mktemp("synthetic") / "raw"
    # more titles than the source has, so grown titles are exercised; two files of ratings
    result = synthetic.generate(out, N_RATINGS, n_users=400, n_titles=10_000, seed=7,
                                source=source, chunk_ratings=25_000)
    ratings = pd.concat([pd.read_csv(p) for p in sorted((out / "ratings").glob("*.csv"))],
                        ignore_index=True)
    return result, ratings


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, source):
    a = synthetic.generate(tmp_path / "a", 3_000, n_users=40, n_titles=2_000, seed=3,
                           source=source, chunk_ratings=1_000)
    b = synthetic.generate(tmp_path / "b", 3_000, n_users=40, n_titles=2_000, seed=3,
                           source=source, chunk_ratings=1_000)
    c = synthetic.generate(tmp_path / "c", 3_000, n_users=40, n_titles=2_000, seed=4,
                           source=source, chunk_ratings=1_000)
    assert a.files == b.files and a.fingerprint == b.fingerprint
    assert len(a.files) >= 2 + 1  # several ratings files and a catalog
    for name in a.files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert c.fingerprint != a.fingerprint


def test_sizes_are_exact_and_pairs_distinct(generated):
    result, ratings = generated
    assert len(ratings) == N_RATINGS == result.n_ratings
    assert ratings["userId"].nunique() == 400
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert result.n_titles == 10_000
    assert result.manifest["grown_titles"] == 10_000 - 9_061


def test_activity_and_popularity_keep_their_long_tails(generated, source):
    result, ratings = generated
    model = source[0]

    def top_share(counts: pd.Series, population: int, share: float = 0.1) -> float:
        c = np.sort(counts.to_numpy())[::-1]
        return c[: int(population * share)].sum() / c.sum()

    # The most active 10% of users and the most rated 10% of the catalog (unrated titles
    # included) carry about the source's share of ratings (within 0.1; distinct titles per
    # user flatten the head a little), far above the 10% of a flat distribution.
    pairs = ((ratings["userId"], 400, model["user"], model["user"].nunique()),
             (ratings["movieId"], result.n_titles, model["item"], len(source[1])))
    for syn_col, syn_n, src_col, src_n in pairs:
        syn = top_share(syn_col.value_counts(), syn_n)
        src = top_share(src_col.value_counts(), src_n)
        assert syn > 0.3 and abs(syn - src) < 0.1, (syn_col.name, syn, src)
    per_user = ratings["userId"].value_counts()
    assert per_user.max() > 5 * per_user.median()


def test_score_histogram_follows_the_source(generated, source):
    _, ratings = generated
    levels = np.arange(1, 11) / 2
    syn = ratings["rating"].value_counts(normalize=True).reindex(levels, fill_value=0)
    src = source[0]["score"].value_counts(normalize=True).reindex(levels, fill_value=0)
    assert np.abs(syn.to_numpy() - src.to_numpy()).max() < 0.03, pd.DataFrame(
        {"syn": syn, "src": src})
    # whole-star users stay whole-star users: some users never give a half star
    half = ratings.groupby("userId")["rating"].apply(lambda s: bool((s % 1 != 0).any()))
    assert 0 < half.mean() < 1


def test_scores_carry_a_collaborative_signal(generated):
    # a title's mean score in one half of the users predicts it in the other half
    _, ratings = generated
    odd = ratings["userId"] % 2 == 1
    means = pd.concat([ratings[odd].groupby("movieId")["rating"].mean().rename("a"),
                       ratings[~odd].groupby("movieId")["rating"].mean().rename("b")], axis=1)
    counts = ratings["movieId"].value_counts()
    means = means.dropna()[counts.reindex(means.dropna().index) >= 40]
    assert means["a"].corr(means["b"]) > 0.5


def test_timestamps_lie_in_the_source_period(generated, source):
    _, ratings = generated
    ts = source[0]["timestamp"].to_numpy("datetime64[s]").astype("int64")
    assert ratings["timestamp"].min() >= ts.min() and ratings["timestamp"].max() <= ts.max()
    assert ratings["timestamp"].max() - ratings["timestamp"].min() > 0.5 * (ts.max() - ts.min())


def test_output_is_labelled_and_passes_cleaning_with_nothing_rejected(generated, tmp_path):
    result, ratings = generated
    manifest = json.loads((result.out_dir / synthetic.MANIFEST).read_text())
    assert manifest["synthetic"] is True and manifest["fingerprint"] == result.fingerprint
    assert "SYNTHETIC" in (result.out_dir / "SYNTHETIC.md").read_text()
    cleaned = build_processed(raw_dir=result.out_dir, source="streaming",
                              paths=project_paths(tmp_path), verbose=False)
    totals = cleaned.accounting.totals()
    assert totals.rejected == 0 and totals.duplicates == 0
    assert len(cleaned.ratings) == len(ratings)
    assert len(cleaned.titles) == result.n_titles
    grown = cleaned.titles["description"].astype(str).str.startswith("Synthetic title")
    assert int(grown.sum()) == manifest["grown_titles"]


def test_titles_nobody_rated_take_a_rated_titles_taste(tmp_path, source):
    """Real catalogs list titles nobody rated (the linked catalogs: most of them); each
    such template borrows a rated title's factors instead of failing."""
    model, titles, _ = source
    unrated = titles["item_id"].iloc[:50]
    result = synthetic.generate(tmp_path / "g", 3_000, n_users=40, n_titles=len(titles),
                                seed=3, source=(model[~model["item"].isin(unrated)], titles,
                                                "embedded MovieLens, 50 titles unrated"))
    assert result.n_ratings == 3_000
    catalog = pd.concat([pd.read_csv(p) for p in (tmp_path / "g").glob("*_titles.csv")])
    assert len(catalog) == len(titles)  # every template kept, the unrated ones included


def test_impossible_sizes_and_bad_counts_are_data_errors(tmp_path, source):
    with pytest.raises(DataError, match="do not fit"):
        synthetic.generate(tmp_path, 10_000, n_users=2, n_titles=100, source=source)
    assert synthetic.parse_count("0.1M") == 100_000 and synthetic.parse_count("250k") == 250_000
    with pytest.raises(DataError):
        synthetic.parse_count("lots")


def test_cli_writes_the_layout_and_reports_errors(tmp_path, capsys):
    assert synthetic.main(["--ratings", "2k", "--users", "30", "--titles", "500",
                           "--source", "embedded", "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "ratings" / "part-00000.csv").is_file()
    assert "SYNTHETIC" in capsys.readouterr().out
    assert synthetic.main(["--ratings", "many", "--source", "embedded",
                           "--out", str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_a_folder_it_did_not_write_is_never_overwritten(tmp_path, source):
    """A user's raw folder (their catalogs, a README) is refused before anything is
    fitted or deleted; a folder the generator wrote is replaced whole (no stale part)."""
    mine = tmp_path / "raw"
    (mine / "ratings").mkdir(parents=True)
    (mine / "netflix_titles.csv").write_text("show_id,title\ns1,Mine\n", encoding="utf-8")
    (mine / "ratings" / "part1.csv").write_text("userId,rating,timestamp,movieId\n",
                                                encoding="utf-8")
    before = {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()}
    with pytest.raises(DataError, match="did not write .*netflix_titles.csv"):
        synthetic.generate(mine, 2_000, n_users=30, n_titles=500, source=source)
    assert {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="is a file"):
        synthetic.generate(tmp_path / "a_file", 2_000, n_users=30, source=source)

    out = tmp_path / "generated"
    synthetic.generate(out, 3_000, n_users=40, n_titles=500, source=source, chunk_ratings=1_000)
    assert len(list((out / "ratings").glob("part-*.csv"))) >= 2
    (out / "ratings" / ".part-00000.csv.abc.tmp").write_text("half", encoding="utf-8")
    again = synthetic.generate(out, 2_000, n_users=30, n_titles=500, source=source)
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == set(again.files) | {synthetic.MANIFEST, synthetic.LABEL}
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(DataError, match="notes.txt"):
        synthetic.generate(out, 2_000, n_users=30, n_titles=500, source=source)


def test_more_users_than_ratings_and_a_negative_seed_are_refused(tmp_path, source, capsys):
    with pytest.raises(DataError, match="1,000 users need at least 1,000 ratings"):
        synthetic.generate(tmp_path / "g", 500, n_users=1_000, source=source)
    with pytest.raises(SystemExit) as info:
        synthetic.main(["--seed", "-1", "--out", str(tmp_path / "s")])
    assert info.value.code == 2 and "expected a whole number >= 0" in capsys.readouterr().err
