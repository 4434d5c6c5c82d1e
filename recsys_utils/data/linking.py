"""Title normalization and linking MovieLens ratings to catalog titles.

Platforms publish ``The Matrix``; MovieLens publishes ``Matrix, The`` (and
``Seven (a.k.a. Se7en)``, ``Léon: The Professional (a.k.a. The Professional)
(Léon)``). :func:`normalize_title` maps such spellings onto one key; the
``linked`` source then joins MovieLens movies to catalog titles on
``(title_norm, release_year)``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import pandas as pd

__all__ = ["LinkResult", "assign_item_ids", "link_movielens", "normalize_title",
           "normalize_titles", "rating_ids", "same_work_item_ids", "title_variants"]

# Articles MovieLens (and ggplot2movies) move to the end: "Matrix, The", "Mépris, Le".
# Single letters that are also words ("I", "O") are left out: "Me, Myself and I".
_ARTICLES = ("the", "a", "an", "le", "la", "les", "l'", "il", "el", "los", "las", "lo",
             "der", "die", "das", "den", "det", "de", "het", "een", "un", "une", "gli")
_ARTICLE_RE = re.compile(
    r"^(?P<body>.+?),\s+(?P<art>" + "|".join(re.escape(a) for a in _ARTICLES) + r")"
    r"(?P<rest>\s*(?::|\s-\s|\().*)?$",
    re.IGNORECASE)
_YEAR_RE = re.compile(r"\s*\(\s*\d{4}(?:\s*[-–]\s*\d{0,4})?\s*\)\s*$")
_PAREN_RE = re.compile(r"\s*\(([^()]*)\)\s*$")
_AKA_RE = re.compile(r"^\s*a\.?k\.?a\.?\s+", re.IGNORECASE)
_AKA_GROUP_RE = re.compile(r"\s*\(\s*a\.?k\.?a\.?\s+[^()]*\)", re.IGNORECASE)
_APOSTROPHES = str.maketrans({"'": "", "’": "", "‘": "", "`": "", "´": ""})
_NON_ALNUM = re.compile(r"[\W_]+")  # keeps letters of every script


def _move_article(title: str) -> str:
    """``Matrix, The`` → ``The Matrix``; ``Dark Knight, The: Rises`` → ``The Dark Knight: Rises``."""
    m = _ARTICLE_RE.match(title.strip())
    if not m:
        return title
    art = m.group("art")
    sep = "" if art.endswith("'") else " "
    return f"{art}{sep}{m.group('body')}{m.group('rest') or ''}"


def _strip_trailing_parens(title: str) -> tuple[str, list[str]]:
    """Split ``Main (Alt 1) (a.k.a. Alt 2) (1999)`` into ``Main`` and ``[Alt 1, Alt 2]``."""
    title = _YEAR_RE.sub("", title)
    alts: list[str] = []
    while True:
        m = _PAREN_RE.search(title)
        if not m or m.start() == 0:
            break
        alts.insert(0, _AKA_RE.sub("", m.group(1)))
        title = title[: m.start()]
        title = _YEAR_RE.sub("", title)
    return title, alts


def _key(title: str) -> str:
    """Case, accents and punctuation folded away; ``&`` read as ``and``."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = text.replace("&", " and ").translate(_APOSTROPHES)
    return _NON_ALNUM.sub(" ", text).strip()


def normalize_title(title: object) -> str:
    """The matching key of a title: lowercase, accent- and punctuation-free, article first.

    Also drops a trailing release year ``(1999)`` and ``(a.k.a. ...)`` groups,
    which MovieLens appends to its titles. Missing titles give ``""``.

    >>> normalize_title("Matrix, The")
    'the matrix'
    >>> normalize_title("Léon: The Professional (a.k.a. The Professional)")
    'leon the professional'
    """
    if title is None or (isinstance(title, float) and title != title) or title is pd.NA:
        return ""
    text = _YEAR_RE.sub("", _AKA_GROUP_RE.sub("", str(title)))
    return _key(_move_article(text))


def normalize_titles(titles: pd.Series) -> pd.Series:
    """:func:`normalize_title` over a Series; missing titles stay missing."""
    out = titles.map(normalize_title, na_action="ignore")
    return out.where(out.notna() & (out != ""), None)


def title_variants(title: object) -> list[str]:
    """Every key under which a MovieLens title may be published, best first.

    ``Cinema Paradiso (Nuovo cinema Paradiso)`` → ``["cinema paradiso",
    "nuovo cinema paradiso", "cinema paradiso nuovo cinema paradiso"]``: the main
    title without its parenthesised alternatives, each alternative, then the
    full title as written.
    """
    full = normalize_title(title)
    if not full:
        return []
    main, alts = _strip_trailing_parens(str(title))
    keys = [_key(_move_article(main))] + [_key(_move_article(a)) for a in alts] + [full]
    return [k for k in dict.fromkeys(keys) if k]


@dataclass(frozen=True)
class LinkResult:
    """How MovieLens movies map to catalog titles.

    Attributes:
        movie_to_item: ``movieId`` → catalog ``item_id`` for every linked movie.
        item_ids: the ``item_id`` of each catalog row (index aligned with the titles).
        n_movies: MovieLens movies considered; ``n_linked_movies`` of them linked.
        n_linked_titles: catalog rows linked to a MovieLens movie (copies included).
    """

    movie_to_item: dict[int, str]
    item_ids: pd.Series
    n_movies: int
    n_linked_movies: int
    n_linked_titles: int

    @property
    def match_rate(self) -> float:
        """Share of MovieLens movies linked to a catalog title."""
        return self.n_linked_movies / self.n_movies if self.n_movies else 0.0


def assign_item_ids(titles: pd.DataFrame, title_movie: pd.Series) -> pd.Series:
    """``item_id`` per catalog row: its ``id``, or the first copy's ``id`` for linked copies.

    ``title_movie`` gives the linked MovieLens ``movieId`` (or any key of the work) per
    row (missing when unlinked). Copies linked to one movie share the ``id`` of the copy
    that comes first in (platform, file line) order — the catalogs are sorted that way.
    """
    item_ids = titles["id"].astype(object).copy()
    linked = title_movie.notna()
    if linked.any():
        first = titles.loc[linked, "id"].groupby(title_movie[linked]).transform("first")
        item_ids[linked] = first.astype(object)
    return item_ids


def same_work_item_ids(titles: pd.DataFrame) -> pd.Series:
    """``item_id`` per catalog row for the ``streaming`` source: copies of one work (the
    same normalized title, release year and type, on several platforms or twice on one)
    share the ``id`` of the first copy in (platform, file line) order, so a rating of any
    copy counts for the work and the work is recommended once, with all its platforms.

    Two films can share a title and a year (*Rangoon*, 2017, in Tamil and in Hindi): when
    two copies both name directors and no director's name in common, none of that key's
    copies is merged (a missed merge costs less than two films made one)."""
    norm = titles["title_norm"].astype(object)
    work = (norm + "|" + titles["release_year"].astype(str) + "|"
            + titles["type"].astype(str)).where(norm.notna() & (norm != ""))
    shared = work.notna() & work.duplicated(keep=False)
    if shared.any():
        names = titles.loc[shared, "director"].map(_name_words)
        clash = [key for key, group in names.groupby(work[shared])
                 if not _all_share_a_name(list(group))]
        work = work.where(~work.isin(clash))
    return assign_item_ids(titles, work)


def _name_words(director: object) -> frozenset[str] | None:
    """The words of a ``director`` field (accents dropped, 3+ letters); None when empty."""
    if not isinstance(director, str) or not director.strip():
        return None
    ascii_ = unicodedata.normalize("NFKD", director).encode("ascii", "ignore").decode()
    return frozenset(w for w in re.findall(r"[a-z]+", ascii_.lower()) if len(w) >= 3) or None


def _all_share_a_name(names: list[frozenset[str] | None]) -> bool:
    """Every two copies that name directors share a word of them ("Chris Bell" and
    "Christopher Bell", "Liu Chia-liang" and "Chia-Liang Liu")."""
    known = [n for n in names if n]
    return all(a & b for i, a in enumerate(known) for b in known[i + 1:])


def rating_ids(titles: pd.DataFrame) -> dict[str, str]:
    """``movieId`` → ``item_id``: the ids a ratings file may name (any copy's ``id``) and
    the title each rates (``data.ratings.read_ratings_file`` maps them)."""
    return dict(zip(titles["id"].astype(str), titles["item_id"].astype(str), strict=True))


def link_movielens(titles: pd.DataFrame, movies: pd.DataFrame) -> LinkResult:
    """Link MovieLens movies to catalog titles on normalized title + release year.

    Args:
        titles: cleaned catalog titles (``id``, ``title``, ``title_norm``, ``release_year``),
            in (platform, line) order.
        movies: one row per MovieLens movie (``movieId``, ``title``, ``year``).

    A movie is tried under each of its :func:`title_variants` in turn (main title
    first); the first variant that matches some catalog ``(title_norm, release_year)``
    wins, and the movie links to every catalog row with that key (copies on
    several platforms then share one ``item_id``, see :func:`assign_item_ids`).
    A catalog row links to at most one movie: the first movie (in ``movieId`` order)
    that claims it.
    """
    cat = titles[["title_norm", "release_year"]].copy()
    cat["row"] = range(len(titles))
    cat = cat.dropna()
    rows_by_key: dict[tuple[str, int], list[int]] = {}
    for key, year, row in zip(cat["title_norm"], cat["release_year"], cat["row"], strict=True):
        rows_by_key.setdefault((str(key), int(year)), []).append(int(row))

    movies = movies.dropna(subset=["year"]).sort_values("movieId")
    title_movie: list[float] = [float("nan")] * len(titles)
    movie_to_row: dict[int, list[int]] = {}
    for movie_id, title, year in zip(movies["movieId"], movies["title"], movies["year"],
                                     strict=True):
        for variant in title_variants(title):
            rows = rows_by_key.get((variant, int(year)))
            if rows:
                free = [r for r in rows if title_movie[r] != title_movie[r]]  # NaN = free
                if free:
                    for r in free:
                        title_movie[r] = float(movie_id)
                    movie_to_row[int(movie_id)] = free
                break

    movie_series = pd.Series(title_movie, index=titles.index)
    item_ids = assign_item_ids(titles, movie_series)
    movie_to_item = {m: str(item_ids.iloc[rows[0]]) for m, rows in movie_to_row.items()}
    return LinkResult(movie_to_item=movie_to_item, item_ids=item_ids,
                      n_movies=int(movies["movieId"].nunique()),
                      n_linked_movies=len(movie_to_item),
                      n_linked_titles=int(movie_series.notna().sum()))
