"""The order of the titles the ranker cannot score, from what the catalog says about them.

A catalog is mostly titles with few or no ratings: on the linked catalogs, 21,260 of 21,998
titles have fewer than five in 04's training window (all but a dozen TV shows: MovieLens
rates films). EASE scores none of them, so a list that a filter fills with them (a
platform's TV shows) came out in title-id order, the same for everyone. Such titles keep
the ranker's neutral score; among themselves they are now ordered by how well they fit the
user's taste in content, plus how many ratings they have:

* each title is a unit vector of idf-weighted content tokens: the words of its genres
  (``TV Dramas`` and ``Drama`` both give ``drama``), its release period (5 years), its
  kind and its age rating;
* a user's profile is their weighted ratings (the ranker's rows) times those vectors; the
  cosine between profile and title, z-scored over the unscored titles, plus the z-score of
  the title's ``log1p`` training ratings, is the order.

Measured (``benchmarks/unscored_titles.py``): among the unscored titles a user rated 4 or
more in 04's per-user test window, NDCG@10 of this order 0.0099 on MovieLens and 0.0381 on
the linked catalogs, against 0.0007 and 0.0000 for title-id order. Cast, director and
country were tried as tokens and left out: they lowered it on the linked catalogs.

The same vectors give a title nobody rated its similar titles (``nearest_in_content``; the
``basis`` of ``Recommender.similar`` and of a Spark batch version's says ``content``): it
has no item factors, nor stored neighbours.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["ORDER_SCALE", "ContentOrder", "genre_words", "nearest_in_content", "title_features"]

#: What the order adds to the unscored titles' neutral ranking score: small enough that it
#: only orders them among themselves (ranking scores are z-scores, about -5 to 5).
ORDER_SCALE = 1e-6

#: Genre words that say what a title is rather than what it is about.
_NOT_A_GENRE = frozenset({"tv", "show", "shows", "movie", "movies", "and", "series",
                          "feature", "film", "films"})


def genre_words(genres: object) -> set[str]:
    """The content words of a genres cell, singular: ``"TV Comedies, Stand-Up"`` ->
    ``{"comedy", "stand", "up"}``."""
    words = set()
    for word in re.findall(r"[a-z]+", str(genres).lower()) if isinstance(genres, str) else ():
        if word in _NOT_A_GENRE:
            continue
        if word.endswith("ies"):
            word = word[:-3] + "y"
        elif word.endswith("s") and len(word) > 3:
            word = word[:-1]
        words.add(word)
    return words


def title_features(titles: pd.DataFrame) -> sp.csr_matrix:
    """One unit row per title of ``titles`` (in its order): idf-weighted genre words,
    release period, kind and age rating (a column the table lacks is left out)."""
    tokens: list[list[tuple[str, float]]] = []
    empty = pd.Series([None] * len(titles), index=titles.index, dtype=object)
    years = pd.to_numeric(titles.get("release_year", empty), errors="coerce")
    for genres, year, kind, rating in zip(titles.get("genres", empty), years,
                                          titles.get("type", empty),
                                          titles.get("rating", empty), strict=True):
        row = [(f"genre:{w}", 1.0) for w in sorted(genre_words(genres))]
        if pd.notna(year):
            row.append((f"period:{int(year) // 5 * 5}", 1.0))
        row += [(f"{name}:{value}", 0.5) for name, value in (("kind", kind), ("rating", rating))
                if isinstance(value, str) and value]
        tokens.append(row)
    vocabulary = {t: j for j, t in enumerate(sorted({t for row in tokens for t, _ in row}))}
    indptr = np.cumsum([0] + [len(row) for row in tokens])
    cols = np.array([vocabulary[t] for row in tokens for t, _ in row], dtype=np.int64)
    vals = np.array([v for row in tokens for _, v in row], dtype=np.float64)
    m = sp.csr_matrix((vals, cols, indptr), shape=(len(tokens), len(vocabulary)))
    idf = np.log((m.shape[0] + 1) / (np.bincount(cols, minlength=m.shape[1]) + 1))
    m = m @ sp.diags(idf)
    norm = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1 / np.where(norm > 0, norm, 1.0)) @ m)


def _zscore(x: np.ndarray, axis: int) -> np.ndarray:
    sd = x.std(axis=axis, keepdims=True)
    return (x - x.mean(axis=axis, keepdims=True)) / np.where(sd > 0, sd, 1.0)


class ContentOrder:
    """The order of the ``unscored`` titles (catalog positions) for any user rows: fitted
    on every title's ``features`` (``title_features``, catalog order) and the training
    ratings ``n_ratings`` of each title."""

    def __init__(self, features: sp.csr_matrix, unscored: np.ndarray,
                 n_ratings: np.ndarray) -> None:
        self.features, self.unscored = features, unscored
        self._of_unscored = features[unscored]
        self._popularity = np.log1p(n_ratings.astype(np.float64))
        self._prior = _zscore(np.log1p(n_ratings[unscored].astype(np.float64)), axis=0)

    def __call__(self, rows: sp.csr_matrix) -> np.ndarray:
        """The order key (higher first) of the unscored titles for each row of ``rows``
        (users x catalog, the ranker's weighted ratings): their content cosine with the
        user's profile, z-scored over them, plus the z-score of their ``log1p`` ratings."""
        profile = np.asarray((rows.astype(np.float64) @ self.features).todense())
        norm = np.linalg.norm(profile, axis=1)
        cosine = np.asarray(self._of_unscored @ profile.T).T / np.where(norm > 0, norm,
                                                                       1.0)[:, None]
        return _zscore(cosine, axis=1) + self._prior[None, :]

    def similar(self, pos: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``nearest_in_content`` of the title at ``pos``."""
        return nearest_in_content(self.features, self._popularity, pos, n)


def nearest_in_content(features: sp.csr_matrix, popularity: np.ndarray, pos: int, n: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(positions, cosines)`` of the ``n`` titles closest in content (``features``) to the
    title at ``pos``, itself excluded; equal cosines: the higher ``popularity`` first (any
    increasing function of the ratings), then catalog order."""
    cosine = np.asarray((features @ features[pos].T).todense()).ravel()
    key = cosine + ORDER_SCALE * _zscore(np.asarray(popularity, dtype=np.float64), axis=0)
    key[pos] = -np.inf
    top = np.argsort(-key, kind="stable")[:n]
    top = top[np.isfinite(key[top])]
    return top, cosine[top]
