"""A small served project for the API and demo tests, built in code.

``build_serving_project(root)`` writes raw catalogs for three platforms and a
ratings file into ``root/data/raw``, cleans them with
``recsys_utils.data.cleaning.build_processed`` (the ``streaming`` source), trains a
``Recommender`` with fast settings and registers it as champion with
``registry.register_model`` -- the same artifacts ``make pipeline`` produces,
in miniature. ``serving_project(tmp_path_factory)`` builds it once per test
session and reuses it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from recsys_utils.paths import ProjectPaths, project_paths

#: Platforms of the fixture catalogs and their id prefixes (data dictionary rule).
PLATFORMS = {"amazon_prime": "a", "hulu": "h", "netflix": "n"}
N_TITLES = 24  # per platform
N_USERS = 40
#: A user id with ratings, and one that has none (cold start).
KNOWN_USER = 1
UNKNOWN_USER = 999_999
#: A title nobody rated (no neighbours in the model) and a rated one.
UNRATED_ID = "hs23"
RATED_ID = "ns1"
#: Title number listed by every platform as the same film: one title (item_id ``as10``).
SHARED = 10
_HEADER = ["show_id", "type", "title", "director", "cast", "country", "date_added",
           "release_year", "rating", "duration", "listed_in", "description"]
_ACTORS = ["Ana Diaz", "Ben Okafor", "Chen Wei", "Dara Nolan", "Emil Berg"]
_COUNTRIES = ["United States", "India", "France, Belgium", "Canada", ""]
_RATINGS = ["PG-13", "R", "TV-MA", "G", ""]


def _catalog_csv(platform: str, seed: int) -> str:
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_HEADER)
    for i in range(1, N_TITLES + 1):
        show = i % 4 == 0  # every fourth title is a TV show
        cast = ", ".join(rng.choice(_ACTORS, size=2, replace=False)) if i % 5 else ""
        writer.writerow([
            f"s{i}", "TV Show" if show else "Movie",
            "A Film On Every Platform" if i == SHARED else f"{platform.title()} Title {i}",
            "" if show else f"Director {i % 7}", cast, _COUNTRIES[i % len(_COUNTRIES)],
            f"2021-0{1 + i % 9}-1{i % 10}", 2000 + i % 6, _RATINGS[i % len(_RATINGS)],
            f"{1 + i % 3} Seasons" if show else f"{80 + 3 * i} min",
            "Dramas, Comedies" if i % 2 else "Documentaries",
            f"Synopsis of title {i}, with a comma and a \"quote\".",
        ])
    return out.getvalue()


def _ratings_csv(seed: int) -> str:
    """Each user rates ~15 titles; tastes differ by platform so rankings differ by user."""
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}s{i}" for prefix in PLATFORMS.values() for i in range(1, N_TITLES + 1)
           if f"{prefix}s{i}" != UNRATED_ID]
    rows = ["userId,rating,timestamp,movieId"]
    t0 = 1_600_000_000
    for user in range(1, N_USERS + 1):
        liked = list(PLATFORMS.values())[user % 3]
        for k, item in enumerate(rng.choice(ids, size=15, replace=False)):
            base = 4.0 if item.startswith(liked) else 2.5
            score = float(np.clip(np.round((base + rng.normal(0, 0.7)) * 2) / 2, 0.5, 5.0))
            rows.append(f"{user},{score:g},{t0 + user * 10_000 + k},{item}")
    return "\n".join(rows) + "\n"


def build_serving_project(root: Path, seed: int = 0) -> ProjectPaths:
    """Raw fixture -> processed tables -> trained, registered champion, under ``root``."""
    from recsys_utils.data.cleaning import build_processed
    from recsys_utils.fingerprint import data_fingerprint
    from recsys_utils.lifecycle.registry import register_model

    paths = project_paths(root).ensure()
    for k, platform in enumerate(PLATFORMS):
        (paths.raw / f"{platform}_titles.csv").write_text(_catalog_csv(platform, seed + k),
                                                          encoding="utf-8")
    (paths.raw / "ratings").mkdir(parents=True, exist_ok=True)
    (paths.raw / "ratings" / "ratings.csv").write_text(_ratings_csv(seed), encoding="utf-8")
    result = build_processed(raw_dir=paths.raw, source="streaming", paths=paths, verbose=False)
    model, params = train_fast(result.model, result.titles, seed)
    register_model(model, params=params, metrics={"rmse": 0.9, "note_only": "fixture"},
                   data_fingerprint=data_fingerprint(result.model), paths=paths,
                   notes="test fixture")
    return paths


def train_fast(model_df, titles, seed: int = 0):  # noqa: ANN001 - thin adapter
    """A fitted Recommender with fast settings; returns ``(model, params)``.

    One baseline component for the rating model; EASE on every rated title (the
    fixture titles have few ratings each) and a handful of factors for ``similar``.
    """
    from recsys_utils.ranking.recommender import train_recommender

    rating_params = {"components": {"baseline": {"bsl_options": {"method": "als",
                                                                 "n_epochs": 5}}},
                     "meta": False}
    ranking_params = {"min_item_ratings": 1, "n_factors": 8}
    model = train_recommender(model_df, titles, rating_params=rating_params,
                              ranking_params=ranking_params, seed=seed)
    return model, {"rating_params": rating_params, "ranking_params": ranking_params,
                   "seed": seed}


def serving_project(tmp_path_factory: pytest.TempPathFactory) -> ProjectPaths:
    """The fixture project, built on first use and shared by the whole session."""
    root = tmp_path_factory.getbasetemp() / "serving_project"
    done = root / ".built"
    if not done.exists():
        build_serving_project(root)
        done.write_text("ok\n", encoding="utf-8")
    return project_paths(root)


def register_other_champion(paths: ProjectPaths, promote: bool = True) -> str:
    """Register (and promote) a visibly different model: the champion with popularity
    weighted into its ranking (no refit). Returns the new version name."""
    import pandas as pd

    from recsys_utils.fingerprint import data_fingerprint
    from recsys_utils.lifecycle.registry import register_model
    from recsys_utils.serving.state import load_state

    model = load_state(paths).recommender.with_ranking(pop_weight=3.0)
    fingerprint = data_fingerprint(pd.read_parquet(paths.processed / "model.parquet"))
    return register_model(model, params={"ranking_params": {"pop_weight": 3.0}},
                          metrics={"rmse": 0.8}, data_fingerprint=fingerprint, paths=paths,
                          promote=promote, notes="reload test")
