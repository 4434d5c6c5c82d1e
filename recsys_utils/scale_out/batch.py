"""The Spark model's batch output as a registry version: precomputed lists, no Spark to serve.

A Spark-trained model is served from what it computed in batch: every user's top-N
(overall and per platform), the similar titles and the factors. ``save_batch`` writes
the factors next to the lists and gathers them in a :class:`BatchRecommendations` (plain
pandas: loading it needs neither Spark nor the training data); ``register_batch``
stores it with the registry's public ``register_model`` — manifest, data fingerprint,
params, metrics, the sha256 of ``model.pkl`` and of every batch file — *without*
promoting it. Promoted like any version (``recsys-retrain --rollback VERSION``,
``registry.promote``), it is served by :class:`BatchRecommender`: the lists behind the
``Recommender``'s serving interface, with the catalog from the titles and analytics
tables only (``serving.state.load_state`` reads neither the ratings nor the model table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils.errors import DataError
from recsys_utils.fingerprint import data_fingerprint
from recsys_utils.lifecycle.registry import (
    BATCH_KIND,
    champion_manifest,
    find_version,
    register_model,
    sha256_file,
)
from recsys_utils.paths import ProjectPaths
from recsys_utils.ranking.catalog import (
    Catalog,
    CatalogView,
    bayesian_average,
    catalog_rows,
    cold_start_order,
    top_valid,
)
from recsys_utils.ranking.content import nearest_in_content, title_features
from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS, Recommendations

__all__ = ["BatchOutput", "BatchRecommendations", "BatchRecommender",
           "champion_cold_start_list", "register_batch", "save_batch"]


@dataclass
class BatchRecommendations:
    """Precomputed lists: ``top_n`` (user, rank, item, score, platform; ``platform="all"``
    for the unfiltered list), ``similar`` (item, rank, similar, similarity) and factors."""

    top_n: pd.DataFrame
    similar: pd.DataFrame
    user_factors: pd.DataFrame
    item_factors: pd.DataFrame

    def recommend(self, user: int, n: int = 10, platform: str | None = None) -> list[str]:
        """The user's precomputed list (on ``platform`` when given); [] for an unknown user
        (the caller's cold-start path answers those)."""
        rows = self.top_n[(self.top_n["user"] == int(user))
                          & (self.top_n["platform"] == (platform or "all"))]
        return rows.sort_values("rank")["item"].head(n).tolist()


@dataclass
class BatchOutput:
    recommendations: BatchRecommendations
    files: dict[str, Path] = field(default_factory=dict)

    def checksums(self, root: Path) -> dict[str, str]:
        """sha256 of every data file of the batch output, by path relative to ``root``."""
        out = {}
        for path in self.files.values():
            parts = sorted(p for p in (path.rglob("*") if path.is_dir() else [path])
                           if p.is_file() and not p.name.startswith((".", "_")))
            out.update({p.relative_to(root).as_posix(): sha256_file(p) for p in parts})
        return out


def save_batch(fitted: Any, catalog: Any, top_n_dir: Path, similar: pd.DataFrame,
               out_dir: Path) -> BatchOutput:
    """Write the factors (and the similar titles) beside the lists; gather all of them."""
    from pyspark.sql import functions as F

    from recsys_utils.scale_out.als import index_frame
    from recsys_utils.scale_out.cleaning import write_parquet_dir

    ids = index_frame(fitted.itemFactors.sparkSession, catalog)
    items = fitted.itemFactors.join(ids, F.col("id") == F.col("idx")).select("item", "features")
    users = fitted.userFactors.select(F.col("id").alias("user"), "features")
    files = {"top_n": top_n_dir,
             "item_factors": write_parquet_dir(items.orderBy("item"),
                                               out_dir / "item_factors.parquet"),
             "user_factors": write_parquet_dir(users.orderBy("user"),
                                               out_dir / "user_factors.parquet"),
             "similar": write_parquet_dir(
                 fitted.itemFactors.sparkSession.createDataFrame(similar),
                 out_dir / "similar.parquet")}
    read = {name: pd.read_parquet(path) for name, path in files.items()}
    if read["top_n"].empty:  # Spark writes no file, so not even the columns, for no row
        raise DataError(
            f"ALS left no title to recommend: each of its {read['user_factors'].shape[0]:,} "
            f"users has rated every title it learned ({read['item_factors'].shape[0]:,}); "
            "the data is too small for batch lists (bring more users or titles)")
    top = read["top_n"].sort_values(["platform", "user", "rank"], ignore_index=True)
    top["platform"] = top["platform"].astype(str)
    recs = BatchRecommendations(top_n=top, similar=read["similar"],
                                user_factors=read["user_factors"],
                                item_factors=read["item_factors"])
    return BatchOutput(recs, files)


def champion_cold_start_list(paths: ProjectPaths | None = None) -> dict[str, str]:
    """The cold-start list a batch version should serve, and where it comes from: the
    champion's (chosen on held-out new users by ``03_modeling``, ``ranking.new_users``),
    else the default. Spark's ALS lists are not chosen there, and cannot use a new user's
    ratings; their cold-start list can still be the one chosen for the same data."""
    try:
        manifest = champion_manifest(paths)
    except DataError:
        manifest = None
    params = (manifest or {}).get("params", {})
    # a Recommender's under ranking_params (null in manifests from before tuning); a
    # batch version's at the top
    chosen = (params.get("ranking_params") or params).get("cold_start_list")
    if manifest is None or chosen is None:
        return {"cold_start_list": DEFAULT_RANKING_PARAMS["cold_start_list"],
                "cold_start_list_from": "the default (no champion with a new-user policy)"}
    return {"cold_start_list": str(chosen),
            "cold_start_list_from": params.get("cold_start_list_from",
                                               f"the champion {manifest.get('version')}")}


def register_batch(batch: BatchOutput, train_model: pd.DataFrame, *, params: dict,
                   metrics: dict, paths: ProjectPaths | None = None) -> str:
    """Register the batch output as a version (not promoted); an identical earlier run
    (same data, params, metrics, code) is reused instead. Returns the version name."""
    from recsys_utils.paths import project_paths

    paths = paths or project_paths()
    fingerprint = data_fingerprint(train_model)
    found = find_version(params=params, metrics=metrics, data_fingerprint=fingerprint,
                         paths=paths)
    if found is not None:
        return found
    return register_model(batch.recommendations, params=params, metrics=metrics,
                          data_fingerprint=fingerprint, paths=paths, promote=False,
                          notes="Spark ALS batch top-N lists (06_scale_out)",
                          extra={"engine": "spark", "kind": BATCH_KIND,
                                 "batch_files": batch.checksums(paths.root)})


class _Lists:
    """Rows of a frame grouped by ``key`` (sorted by key, then rank): a lookup is one
    binary search, not a scan of every user's rows."""

    def __init__(self, frame: pd.DataFrame, key: str, item: str, score: str) -> None:
        frame = frame.sort_values([key, "rank"], kind="mergesort")
        self.keys, self.starts, self.counts = np.unique(frame[key].to_numpy(),
                                                        return_index=True, return_counts=True)
        self.items = frame[item].astype(str).to_numpy(dtype=object)
        self.scores = frame[score].to_numpy(dtype=np.float64)

    def find(self, key: Any) -> slice | None:
        k = int(np.searchsorted(self.keys, key))
        if k == len(self.keys) or self.keys[k] != key:
            return None
        return slice(int(self.starts[k]), int(self.starts[k] + self.counts[k]))


class BatchRecommender(CatalogView):
    """A Spark batch version answering like a ``Recommender`` (what ``serving`` calls).

    * **Known user** (one with a stored list): no filter → the stored overall list
      (``platform="all"``); a platform filter → the stored list of that platform (several
      platforms: their lists merged by score, a title on two of them once) — exact, since
      each stored list is the top ``depth`` within its platform. The type filter is applied
      at request time to that list: the lists were ranked without it, so when fewer than
      ``n`` of the ``depth`` stored titles pass (or ``n > depth``) the answer has *fewer
      than n items* (its length says so), never titles from outside the stored lists.
      ``score`` is the ALS score the list is ordered by, not a rating.
    * **Unknown user**: the ``Recommender``'s cold-start list ``cold_start_list`` (the
      registered version's, ``champion_cold_start_list``): the best Bayesian averages
      ``(sum of scores + prior_count * global mean) / (n_ratings + prior_count)`` or the
      most rated titles within the filters, from the analytics table's ``mean_score`` and
      ``n_ratings``.
    * **A new user's ratings** (``recommend_for_ratings``): there is no model to fold
      them into, so the cold-start list without the rated titles (``cold_start=True``).
    * **Similar titles**: the stored table; a title without entries (nobody rated it) gets
      the titles closest in content (``ranking.content.nearest_in_content``, as the
      ``Recommender`` does).

    Titles of the lists that are no longer in the catalog are left out.
    """

    def __init__(self, batch: BatchRecommendations, analytics: pd.DataFrame,
                 prior_count: float = DEFAULT_RANKING_PARAMS["prior_count"],
                 cold_start_list: str | None = None) -> None:
        self.catalog = Catalog(analytics)
        # the Recommender's cold-start list, from the analytics table's means and counts
        # (those of the title's item_id, equal on each of its rows), in catalog order
        per_title = analytics[["item_id", "n_ratings", "mean_score"]].astype({"item_id": str})
        first = per_title.drop_duplicates("item_id").set_index("item_id").reindex(
            self.catalog.item_ids)
        self._n_ratings = first["n_ratings"].fillna(0).to_numpy(dtype=np.float64)
        sums = first["mean_score"].fillna(0).to_numpy(dtype=np.float64) * self._n_ratings
        self._bayes = bayesian_average(sums, self._n_ratings, prior_count)
        self._content = title_features(catalog_rows(analytics)[1])  # in catalog order
        self._cold_order = cold_start_order(
            self._bayes, self._n_ratings,
            cold_start_list or DEFAULT_RANKING_PARAMS["cold_start_list"])
        top = batch.top_n
        self._lists = {str(p): _Lists(rows, "user", "item", "score")
                       for p, rows in top.groupby(top["platform"].astype(str))}
        self._similar = _Lists(batch.similar, "item", "similar", "similarity")
        overall = self._lists.get("all")
        self.user_ids: np.ndarray = (overall.keys if overall is not None
                                     else np.zeros(0, dtype=np.int64))
        #: titles stored per user and list (the lists' ``k``)
        self.depth = int(top["rank"].max()) if len(top) else 0

    def known_user(self, user: int) -> bool:
        """Whether ``user`` has a stored list."""
        try:
            k = int(np.searchsorted(self.user_ids, int(user)))
        except (TypeError, ValueError):
            return False
        return k < len(self.user_ids) and int(self.user_ids[k]) == int(user)

    def candidate_mask(self, platforms: Sequence[str] | None = None,
                       kind: str | None = None) -> np.ndarray:
        """Titles on any of ``platforms`` and of ``kind`` (``Catalog.mask``)."""
        return self.catalog.mask(platforms, kind)

    def _cold_start(self, n: int, valid: np.ndarray, platforms: Sequence[str] | None,
                    user: int | None) -> Recommendations:
        top = top_valid(self._cold_order, valid, n)
        return Recommendations(user=user, cold_start=True, items=self.catalog.frame(
            top, self._bayes[top], self._cold_order[top], platforms))

    def recommend(self, user: int, n: int = 10, platforms: Sequence[str] | None = None,
                  kind: str | None = None) -> Recommendations:
        """Top ``n`` of ``user``'s stored list within the filters (see the class)."""
        valid = self.candidate_mask(platforms, kind)
        if not self.known_user(user):
            try:
                as_int = int(user)
            except (TypeError, ValueError):
                as_int = None
            return self._cold_start(n, valid, platforms, as_int)
        # a filter naming every platform is no filter (a one-platform catalog stores only
        # the overall list: its platform's list would be the same rows)
        wanted = set(platforms or ())
        names = sorted(wanted) if wanted and not wanted >= set(self.catalog.platforms) \
            else ["all"]
        items, scores = [], []
        for name in names:
            lists = self._lists.get(name)
            rows = lists.find(int(user)) if lists is not None else None
            if rows is not None:
                items.append(lists.items[rows])
                scores.append(lists.scores[rows])
        pos = (self.catalog.index.get_indexer(np.concatenate(items)) if items
               else np.zeros(0, dtype=np.int64))
        score = np.concatenate(scores) if scores else np.zeros(0)
        if len(names) > 1:  # merge: best score first, ties by catalog order, once each
            order = np.lexsort((pos, -score))
            pos, score = pos[order], score[order]
            first = np.sort(np.unique(pos, return_index=True)[1])
            pos, score = pos[first], score[first]
        keep = (pos >= 0) & valid[np.where(pos >= 0, pos, 0)]
        top, score = pos[keep][:n], score[keep][:n]
        return Recommendations(user=int(user), cold_start=False,
                               items=self.catalog.frame(top, score, score, platforms))

    def recommend_for_ratings(self, ratings: Mapping[str, float], n: int = 10,
                              platforms: Sequence[str] | None = None,
                              kind: str | None = None) -> Recommendations:
        """The cold-start list without the rated titles (no model to fold them into);
        ``UnknownItemError`` for a title not in the catalog."""
        valid = self.candidate_mask(platforms, kind).copy()
        valid[self.catalog.positions(ratings)] = False
        return self._cold_start(n, valid, platforms, None)

    def similar(self, item_id: str, n: int = 10) -> pd.DataFrame:
        """The stored neighbours of ``item_id``: ``item_id, title, platform, similarity,
        basis``; without any, its nearest titles in content."""
        at = int(self.catalog.positions([item_id])[0])
        rows = self._similar.find(str(item_id))
        if rows is None:
            top, sims = nearest_in_content(self._content, self._n_ratings, at, n)
            return self.catalog.similar_frame(top, sims, basis="content")
        names, sims = self._similar.items[rows], self._similar.scores[rows]
        pos = self.catalog.index.get_indexer(names)
        return self.catalog.similar_frame(pos[pos >= 0][:n], sims[pos >= 0][:n])

    def __repr__(self) -> str:
        return (f"BatchRecommender({len(self.user_ids):,} users x {self.depth} titles, "
                f"{len(self.item_ids):,} catalog titles)")
