"""The cleaning step: raw files (or the embedded default) → processed parquet tables.

``build_processed`` picks a source (``streaming``, ``linked`` or ``movielens``,
see ``book/data_dictionary.md``), cleans it, accounts for every input row and
writes ``data/processed/{titles,ratings,analytics,model}.parquet``,
``data/interim/rejected_{titles,ratings}.parquet`` and
``data/processed/accounting.json``. ``load_processed`` reads them back.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils import DEFAULT_SEED
from recsys_utils.atomic import atomic_write_text
from recsys_utils.data.accounting import Accounting, empty_rejects
from recsys_utils.data.catalogs import CATALOG_SUFFIX, discover_catalogs, read_catalogs
from recsys_utils.data.linking import link_movielens, rating_ids, same_work_item_ids
from recsys_utils.data.movielens import (
    ENRICH_SOURCE,
    enrich_titles,
    load_ggplot2movies,
    load_movielens,
    movielens_movies,
    movielens_ratings,
    movielens_titles,
)
from recsys_utils.data.ratings import discover_ratings, read_ratings_files
from recsys_utils.data.store import merge_history, store_lock
from recsys_utils.data.tables import (
    ACCOUNTING_FILE,
    TABLES,
    ratings_fingerprint,
    read_table,
    table_path,
    write_table,
)
from recsys_utils.errors import DataError, UnknownFilterError, run_command
from recsys_utils.paths import ProjectPaths, project_paths
from recsys_utils.schema import MODEL_COLUMNS, cast_analytics, cast_model, cast_ratings, cast_titles

__all__ = ["SOURCES", "TABLES", "CleaningResult", "ProcessedData", "build_analytics",
           "build_model_table", "build_processed", "check_folder", "load_processed", "main",
           "resolve_source"]

#: Accepted values of ``source``; ``auto`` picks the first applicable of the others.
SOURCES = ("auto", "streaming", "linked", "movielens")
_LAYOUT = "`<platform>_titles.csv` files and `ratings/*.csv` (userId,rating,timestamp,movieId)"


@dataclass(frozen=True)
class ProcessedData:
    """The four processed tables (schemas in ``book/data_dictionary.md``)."""

    titles: pd.DataFrame
    ratings: pd.DataFrame
    analytics: pd.DataFrame
    model: pd.DataFrame


@dataclass
class CleaningResult:
    """Everything one cleaning run produced, with helpers for the notebook."""

    source: str
    raw_dir: Path | None
    paths: ProjectPaths
    titles: pd.DataFrame
    ratings: pd.DataFrame
    analytics: pd.DataFrame
    model: pd.DataFrame
    rejected_titles: pd.DataFrame
    rejected_ratings: pd.DataFrame
    accounting: Accounting
    seed: int = DEFAULT_SEED
    #: Share of MovieLens movies matched (linked to a catalog / enriched); None for streaming.
    match_rate: float | None = None
    match_label: str = ""
    stats: dict[str, int | float] = field(default_factory=dict)
    written: dict[str, Path] = field(default_factory=dict)

    @property
    def processed(self) -> ProcessedData:
        return ProcessedData(self.titles, self.ratings, self.analytics, self.model)

    def rejected_by_reason(self) -> pd.DataFrame:
        """Rows not kept, counted by table and reason (duplicates included)."""
        frames = [df.assign(table=kind) for kind, df in
                  (("titles", self.rejected_titles), ("ratings", self.rejected_ratings))]
        both = pd.concat(frames, ignore_index=True)
        if both.empty:
            return pd.DataFrame({"table": [], "reason": [], "rows": []})
        counts = both.groupby(["table", "reason"]).size().rename("rows").reset_index()
        return counts.sort_values(["table", "rows", "reason"], ascending=[True, False, True],
                                  ignore_index=True)

    def rejected_sample(self, n: int = 10) -> pd.DataFrame:
        """Up to ``n`` rejected rows, drawn with the run's seed, spread over the reasons."""
        both = pd.concat([self.rejected_titles.assign(table="titles"),
                          self.rejected_ratings.assign(table="ratings")], ignore_index=True)
        if both.empty:
            return both
        # One row per reason first, so rare reasons are shown, then fill at random.
        shuffled = both.sample(frac=1.0, random_state=self.seed)
        firsts = shuffled.drop_duplicates(["table", "reason"])
        rest = shuffled.drop(firsts.index)
        pick = pd.concat([firsts, rest]).head(n)
        return pick.sort_values(["table", "source_file", "line"], ignore_index=True)

    def rows_per_platform(self) -> pd.DataFrame:
        """Titles, distinct items and rated titles per platform."""
        grouped = self.analytics.groupby("platform")
        out = pd.DataFrame({"titles": grouped.size(),
                            "items": grouped["item_id"].nunique(),
                            "rated_titles": grouped["n_ratings"].apply(lambda s: int((s > 0).sum()))})
        return out.reset_index()

    def key_numbers(self) -> dict[str, object]:
        """The run's headline numbers (glued into the book as ``clean_*``)."""
        totals = self.accounting.totals()
        return {
            "source": self.source,
            "n_titles": len(self.titles),
            "n_items": int(self.titles["item_id"].nunique()),
            "n_ratings": len(self.ratings),
            "n_users": int(self.ratings["user_id"].nunique()),
            "n_rejected": totals.rejected,
            "n_duplicates": totals.duplicates,
            "match_rate": None if self.match_rate is None else round(self.match_rate, 4),
        }


def resolve_source(raw_dir: Path, source: str = "auto", *, explicit: bool = False) -> str:
    """The source to use for ``raw_dir``; raises :class:`DataError` when it cannot apply.

    ``explicit``: the user named ``raw_dir`` (not the project's default ``data/raw``). A
    folder the user named must exist and hold a catalog or ratings: falling back to the
    embedded data would silently run on data they did not ask for.
    """
    if source not in SOURCES:
        raise UnknownFilterError("source", source, SOURCES)
    if source == "movielens":
        return source
    if raw_dir.exists() and not raw_dir.is_dir():
        raise DataError(f"raw directory {raw_dir} is a file, not a folder; expected {_LAYOUT} "
                        "in a folder")
    if explicit and not raw_dir.is_dir():
        raise DataError(f"raw directory {raw_dir} does not exist; expected {_LAYOUT} there "
                        f"(or leave raw_dir at its default for the embedded MovieLens data)")
    if (raw_dir / "ratings").exists() and not (raw_dir / "ratings").is_dir():
        raise DataError(f"{raw_dir / 'ratings'} is a file; ratings go in a folder "
                        f"{raw_dir / 'ratings'}/ of .csv files ({_LAYOUT})")
    catalogs = discover_catalogs(raw_dir)
    ratings = discover_ratings(raw_dir)
    if source == "auto":
        if catalogs:
            return "streaming" if ratings else "linked"
        if ratings:
            raise DataError(f"{raw_dir}: found ratings files but no `<platform>_titles.csv` "
                            f"catalog to rate; expected {_LAYOUT}")
        if explicit:  # a folder the user named: the embedded data is not what they asked for
            raise DataError(f"raw directory {raw_dir} holds no `<platform>_titles.csv` catalog "
                            f"and no ratings; expected {_LAYOUT} (or leave raw_dir at its "
                            "default for the embedded MovieLens data)")
        return "movielens"
    if not raw_dir.is_dir():
        raise DataError(f"raw directory {raw_dir} does not exist; source={source!r} expects "
                        f"{_LAYOUT} there (or use source='movielens' for the embedded default)")
    if not catalogs:
        raise DataError(f"no `<platform>_titles.csv` catalog in {raw_dir}; source={source!r} "
                        f"expects {_LAYOUT} (or use source='movielens')")
    if source == "streaming" and not ratings:
        raise DataError(f"no ratings file in {raw_dir / 'ratings'}; source='streaming' expects "
                        f"`ratings/*.csv` with userId,rating,timestamp,movieId "
                        f"(or use source='linked' to link the MovieLens ratings)")
    return source


def unread_entries(raw_dir: Path) -> list[str]:
    """What in ``raw_dir`` looks like an input but is not read, with why: a ``.csv`` beside
    the catalogs that is not one (``ratings.csv`` at the top), a folder other than
    ``ratings``, and anything in ``ratings/`` but ``.csv`` files. Hidden files, notes
    (``README.md``) and hold-back files (``new_ratings_*.csv``, for ``recsys-retrain``)
    are expected there and not listed."""
    def shown(p: Path) -> str:
        return p.relative_to(raw_dir).as_posix() + ("/" if p.is_dir() else "")

    read = {*discover_catalogs(raw_dir).values(), *discover_ratings(raw_dir)}
    out = []
    for p in sorted(raw_dir.iterdir()) if raw_dir.is_dir() else []:
        name = p.name.lower()
        if name.startswith(".") or name == "ratings" or p in read:
            continue
        if p.is_dir():
            out.append(f"{shown(p)} (a folder: catalogs are files `<platform>{CATALOG_SUFFIX}` "
                       "and ratings go in `ratings/`)")
        elif not p.is_file():
            out.append(f"{shown(p)} ({_NOT_A_FILE})")
        elif name.endswith(".csv") and not name.startswith("new_ratings_"):
            out.append(f"{shown(p)} (not `<platform>{CATALOG_SUFFIX}`; ratings go in "
                       "`ratings/`)")
    folder = raw_dir / "ratings"
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not p.name.startswith(".") and p not in read:
            why = (_NOT_A_FILE if not p.is_dir() and not p.is_file()
                   else "only .csv files are read there")
            out.append(f"{shown(p)} ({why})")
    return out


_NOT_A_FILE = "not a file that can be read: a broken link?"


def build_analytics(titles: pd.DataFrame, model: pd.DataFrame) -> pd.DataFrame:
    """Titles plus ``mean_score`` and ``n_ratings`` of their ``item_id``, from the model
    table (one rating per user and title, the latest): the numbers the model's cold-start
    list ranks by, which a served Spark batch reads from here."""
    stats = model.groupby("item")["score"].agg(mean_score="mean", n_ratings="size")
    out = titles.join(stats, on="item_id")
    out["n_ratings"] = out["n_ratings"].fillna(0)
    return cast_analytics(out)


def build_model_table(ratings: pd.DataFrame) -> pd.DataFrame:
    """``user, item, score, timestamp``: one row per (user, item), the latest rating.

    A user may rate an item twice (re-rating, or two MovieLens movies linked to one
    catalog item); the model sees the latest opinion (ties: the later row).
    """
    model = ratings.rename(columns={"user_id": "user", "item_id": "item"})[MODEL_COLUMNS]
    # One int64 key per (user, item) and one hash pass: linear in the ratings (a sort on
    # the pair of columns was 1.34 in the 1 M -> 10 M cost exponent).
    items = pd.factorize(model["item"])[0].astype(np.int64)
    pair = model["user"].to_numpy(np.int64) * (int(items.max(initial=0)) + 1) + items
    by_time = np.argsort(pd.to_datetime(model["timestamp"]).to_numpy(), kind="stable")
    latest = ~pd.Series(pair[by_time]).duplicated(keep="last").to_numpy()
    keep = np.zeros(len(model), dtype=bool)
    keep[by_time[latest]] = True  # a mask, so the rows stay in file order
    return cast_model(model[keep])


def _streaming(raw_dir: Path) -> dict[str, object]:
    titles, rejected_titles, accounts = read_catalogs(raw_dir)
    titles = cast_titles(titles.assign(item_id=same_work_item_ids(titles).to_numpy()))
    got = read_ratings_files(discover_ratings(raw_dir), rating_ids(titles), root=raw_dir)
    n_copies = len(titles) - titles["item_id"].nunique()
    return {"titles": titles, "rejected_titles": rejected_titles, "ratings": got.ratings,
            "rejected_ratings": got.rejected, "accounts": accounts + got.accounts,
            "stats": {"title_copies_merged": n_copies}}


def _linked(raw_dir: Path) -> dict[str, object]:
    titles, rejected_titles, accounts = read_catalogs(raw_dir)
    ml = load_movielens()
    link = link_movielens(titles, movielens_movies(ml))
    titles = titles.assign(item_id=link.item_ids.to_numpy())
    ratings, rejected, account = movielens_ratings(ml, item_map=link.movie_to_item)
    return {"titles": cast_titles(titles), "rejected_titles": rejected_titles,
            "ratings": ratings, "rejected_ratings": rejected, "accounts": accounts + [account],
            "match_rate": link.match_rate,
            "match_label": "MovieLens movies linked to a catalog title (title + year)",
            "stats": {"movielens_movies": link.n_movies, "linked_movies": link.n_linked_movies,
                      "linked_titles": link.n_linked_titles,
                      "linked_items": int(pd.Series(list(link.movie_to_item.values())).nunique()),
                      "linked_ratings": len(ratings),
                      "rating_link_rate": round(len(ratings) / max(account.read, 1), 4)}}


def embedded_movielens() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The embedded default's clean ``(titles, model table)``, in memory: what 01 writes
    for ``source="movielens"``, for tests and benchmarks that run without it."""
    got = _movielens()
    return cast_titles(got["titles"]), build_model_table(got["ratings"])


def _movielens() -> dict[str, object]:
    ml = load_movielens()
    titles, rejected_titles, movies_account = movielens_titles(ml)
    titles, info = enrich_titles(titles, load_ggplot2movies())
    ratings, rejected, account = movielens_ratings(ml, known_items=set(titles["item_id"]))
    return {"titles": titles, "rejected_titles": rejected_titles, "ratings": ratings,
            "rejected_ratings": rejected, "accounts": [movies_account, account],
            "match_rate": info.match_rate,
            "match_label": f"MovieLens titles enriched from {ENRICH_SOURCE} (title + year)",
            "stats": {"enriched_titles": info.n_matched, "with_mpaa_rating": info.n_with_mpaa}}


def _write_parquet(df: pd.DataFrame, path: Path, ratings_fp: str | None = None) -> Path:
    """Write atomically (``recsys_utils.atomic``): a failed run never leaves a half-written
    table behind; the store tables carry the fingerprint of their ratings."""
    return write_table(path, df, ratings_fp)


def build_processed(raw_dir: str | Path | None = None, source: str = "auto",
                    paths: ProjectPaths | None = None, seed: int = DEFAULT_SEED,
                    output_dir: str | Path | None = None, verbose: bool = True,
                    write: bool = True, history: bool | None = None) -> CleaningResult:
    """Clean the chosen source and write the processed tables.

    Args:
        raw_dir: folder with ``<platform>_titles.csv`` and ``ratings/*.csv``
            (default ``data/raw``; a relative path is relative to the project root).
        source: ``auto`` | ``streaming`` | ``linked`` | ``movielens``.
        paths: the project tree (default :func:`project_paths`).
        seed: seeds the sample of rejected rows shown by the notebook (cleaning itself
            is deterministic).
        output_dir: where the four tables and ``accounting.json`` go
            (default ``data/processed``; relative to the project root).
        verbose: print the accounting.
        write: ``False`` is a dry run (``recsys-clean --check``): everything is read,
            cleaned and accounted for, but no file or folder is created or changed.
        history: replay the ratings history (``data/history``: every batch retraining
            accepted, every hold-back; ``recsys_utils.data.store.merge_history``) over the
            raw ratings, so rebuilding the store keeps every accepted rating. Default: when
            writing the project's store (``write`` into ``data/processed``); a dry run, or
            tables written elsewhere, use the raw folder alone.

    Raises:
        DataError: the raw folder does not hold what ``source`` needs.
        AccountingError: the row accounting does not add up (a bug).
    """
    paths = paths or project_paths()
    raw = Path(raw_dir) if raw_dir is not None else paths.raw
    raw = raw if raw.is_absolute() else paths.root / raw
    chosen = resolve_source(raw, source, explicit=raw.resolve() != paths.raw.resolve())
    parts = _movielens() if chosen == "movielens" else (
        _streaming(raw) if chosen == "streaming" else _linked(raw))

    titles = cast_titles(parts["titles"])
    ratings = cast_ratings(parts["ratings"])
    rejected_titles = _sorted_rejects(parts["rejected_titles"])
    accounts, rejected_ratings = list(parts["accounts"]), parts["rejected_ratings"]
    stats = dict(parts.get("stats", {}))
    out = Path(output_dir) if output_dir is not None else paths.processed
    into_store = (out if out.is_absolute() else paths.root / out).resolve() == \
        paths.processed.resolve()
    if history if history is not None else (write and into_store):
        merged = merge_history(ratings, accounts, paths, rating_ids(titles))
        ratings, accounts = merged.ratings, merged.accounts
        rejected_ratings = pd.concat([df for df in (rejected_ratings, merged.rejected) if len(df)]
                                     or [rejected_ratings], ignore_index=True)
        if merged.accepted_files or merged.held_back_files:
            stats.update(history_accepted_files=merged.accepted_files,
                         history_held_back_files=merged.held_back_files,
                         history_withheld=merged.withheld)
    rejected_ratings = _sorted_rejects(rejected_ratings)
    accounting = Accounting(accounts)
    accounting.check({"titles": rejected_titles, "ratings": rejected_ratings})
    model = build_model_table(ratings)
    result = CleaningResult(
        source=chosen, raw_dir=None if chosen == "movielens" else raw, paths=paths,
        titles=titles, ratings=ratings, analytics=build_analytics(titles, model),
        model=model, rejected_titles=rejected_titles,
        rejected_ratings=rejected_ratings, accounting=accounting, seed=seed,
        match_rate=parts.get("match_rate"), match_label=str(parts.get("match_label", "")),
        stats=stats)

    if verbose:
        print(f"source: {chosen}" + (f" (raw dir {raw})" if result.raw_dir else ""))
        if result.raw_dir is not None:
            for entry in unread_entries(raw):
                print(f"not read: {entry}")
        for line in accounting.summary_lines():
            print(line)
        if result.match_rate is not None:
            print(f"match rate: {result.match_rate:.1%} of {result.match_label}")
        copies = int(stats.get("title_copies_merged", 0))
        if copies:
            print(f"titles on several platforms: {copies:,} catalog row"
                  f"{'s are copies' if copies > 1 else ' is a copy'} of another row's title "
                  "(same title, year and type), sharing its item_id")
    if write and result.model.empty:
        # Empty tables would only fail later, and obscurely, in every step after this one.
        raise DataError(_nothing_kept(result, raw))
    if write:
        _write_all(result, paths, output_dir)
    return result


def _nothing_kept(result: CleaningResult, raw: Path) -> str:
    """Why no rating was kept, by reason, and how to see the rejected rows."""
    counts = result.rejected_by_reason()
    reasons = "; ".join(f"{r.table}: {r.rows:,} {r.reason}" for r in counts.itertuples())
    # a file's note says what to change (another scale, text user ids, a wrong header)
    notes = [s.note if s.note.startswith(s.source_file) else f"{s.source_file}: {s.note}"
             for s in result.accounting.sources if s.kind == "ratings" and s.note]
    hint = f" First file note: {notes[0]}." if notes else ""
    return (f"no rating was kept, so there is nothing to model ({len(result.titles):,} titles "
            f"kept; rows not kept: {reasons or 'none'}).{hint} Nothing was written; see every "
            f"rejected row with its reason: recsys-clean --check {raw}")


def _write_all(result: CleaningResult, paths: ProjectPaths,
               output_dir: str | Path | None) -> None:
    """Write the processed tables, the rejected rows and ``accounting.json``."""
    chosen, ratings, accounting = result.source, result.ratings, result.accounting
    rejected_titles, rejected_ratings = result.rejected_titles, result.rejected_ratings
    paths.ensure()
    out = Path(output_dir) if output_dir is not None else paths.processed
    out = out if out.is_absolute() else paths.root / out
    out.mkdir(parents=True, exist_ok=True)
    fp = ratings_fingerprint(ratings)
    # Under the store lock: retraining must not see (or tidy away) a half-rebuilt store.
    with store_lock(paths):
        for name in TABLES:
            result.written[name] = _write_parquet(getattr(result, name),
                                                  table_path(name, folder=out),
                                                  None if name == "titles" else fp)
        for kind, df in (("titles", rejected_titles), ("ratings", rejected_ratings)):
            result.written[f"rejected_{kind}"] = _write_parquet(
                df, paths.interim / f"rejected_{kind}.parquet")
        meta = {"source": chosen,
                "raw_dir": None if result.raw_dir is None else str(result.raw_dir),
                "match_rate": result.match_rate, "match_label": result.match_label,
                "stats": result.stats, **json.loads(accounting.to_json())}
        result.written["accounting"] = atomic_write_text(out / ACCOUNTING_FILE,
                                                         json.dumps(meta, indent=2) + "\n")


def _sorted_rejects(df: pd.DataFrame) -> pd.DataFrame:
    from recsys_utils.data.accounting import RejectLog

    log = RejectLog()
    log.extend(df if len(df) else empty_rejects())
    return log.to_frame()


def load_processed(paths: ProjectPaths | None = None) -> ProcessedData:
    """Read the four processed tables back, checked and cast to their documented dtypes.

    Raises:
        DataError: a table is missing, unreadable (empty, truncated, not parquet) or has
            wrong columns or types; the message names the file and says to run
            ``make pipeline`` (``recsys_utils.data.tables.read_table``).
    """
    paths = paths or project_paths()
    return ProcessedData(**{name: read_table(name, paths) for name in TABLES})


def check_folder(raw_dir: str | Path, source: str = "auto") -> CleaningResult:
    """``recsys-clean --check``: clean ``raw_dir`` in memory and print its accounting and
    the rejected rows by reason, writing nothing."""
    result = build_processed(raw_dir=raw_dir, source=source, write=False)
    counts = result.rejected_by_reason()
    if len(counts):
        print("rows not kept, by reason:")
        for row in counts.itertuples(index=False):
            print(f"  {row.table:<8} {row.reason:<32} {row.rows:>8,}")
    print(f"kept {len(result.titles):,} titles and {len(result.ratings):,} ratings by "
          f"{result.ratings['user_id'].nunique():,} users; checked only, nothing written")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``recsys-clean``: run the cleaning step, check a raw folder, or write the example."""
    parser = argparse.ArgumentParser(
        prog="recsys-clean", description="Clean the raw data into data/processed/*.parquet "
        "(or, with --check, only validate a raw folder; with --example, write one).")
    parser.add_argument("--raw-dir", type=Path, default=None,
                        help="folder with <platform>_titles.csv and ratings/*.csv "
                             "(default: data/raw of the project)")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="auto (default): streaming if catalogs + ratings, linked if only "
                             "catalogs, else the embedded MovieLens sample")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed of the rejected-rows sample")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", type=Path, metavar="DIR",
                        help="validate DIR (same layout as --raw-dir) and print the row "
                             "accounting and the reasons rows were rejected; writes nothing")
    action.add_argument("--example", type=Path, metavar="DIR",
                        help="write a small example raw folder, built from the embedded "
                             "MovieLens data with a few deliberately bad rows, into DIR")
    args = parser.parse_args(argv)

    def body() -> None:
        if args.check is not None:
            check_folder(args.check.resolve(), source=args.source)  # relative to cwd
        elif args.example is not None:
            from recsys_utils.data.example import write_example

            got = write_example(args.example)
            print(f"wrote {args.example}: {len(got.files)} files, {got.n_titles:,} titles and "
                  f"{got.n_ratings:,} ratings plus deliberately bad rows (see its README.md)")
            print(f"check it: recsys-clean --check {args.example}")
        else:
            raw_dir = args.raw_dir.resolve() if args.raw_dir is not None else None
            build_processed(raw_dir=raw_dir, source=args.source, seed=args.seed)

    return run_command(body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
