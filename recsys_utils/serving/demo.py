"""The Gradio demo: recommendations for a user (or a new user who rates a few titles),
titles similar to a title, and the platform analytics, on the same objects the API serves.

``recsys-demo`` (``make demo``) loads the processed tables and the champion model
once with ``recsys_utils.serving.state.load_state`` (same checksum check, same refusal when
artifacts are missing) and serves the page on 127.0.0.1:7860.

Why the callbacks are module-level functions taking a ``ServingState``: they are
the demo's whole logic, and tests call them directly without starting Gradio.
``build_demo`` only lays out widgets and binds them to these functions.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd
from pydantic import ValidationError

from recsys_utils.errors import (
    DataError,
    UnknownFilterError,
    UnknownItemError,
    excerpt,
    run_command,
)
from recsys_utils.explore import analytics
from recsys_utils.lifecycle import registry
from recsys_utils.paths import project_paths
from recsys_utils.serving.app import PORT, check_port, fill_from_environment
from recsys_utils.serving.schemas import NewUserRatingsIn, RatingIn, RecommendedTitle
from recsys_utils.serving.state import (
    RatingsError,
    ServingState,
    load_state,
    platforms_within,
    recommend_new_user,
)

__all__ = [
    "ALL",
    "RATE_SLOTS",
    "analytics_answers",
    "build_demo",
    "count_tables",
    "main",
    "new_user_recommendations",
    "rateable_titles",
    "similar_titles",
    "user_recommendations",
]

#: Dropdown value meaning "no filter".
ALL = "All"
#: How many (title, rating) pairs a new user can fill in.
RATE_SLOTS = 5
#: Columns of the recommendation table shown to the user.
REC_COLUMNS = ["rank", "title", "platform", "type", "predicted rating", "id"]
REC_WIDTHS = ["7%", "47%", "13%", "9%", "13%", "11%"]
#: Why "predicted rating" need not fall down the list: two models, two questions.
RANK_NOTE = ("The list is in rank order: ranked by what you are likely to watch and enjoy "
             "(the ranking model, EASE). *Predicted rating* is a second model's estimate of "
             "the score you would give, so it need not decrease down the list.")
#: Columns of the similar-titles table.
SIMILAR_COLUMNS = ["rank", "title", "platform", "similarity", "id"]
MAX_N = 50


# --------------------------------------------------------------------------- helpers


def _kind(kind: str | None) -> str | None:
    return None if kind in (None, "", ALL) else kind


def _platforms(platforms: Sequence[str] | None) -> list[str] | None:
    chosen = [p for p in (platforms or []) if p and p != ALL]
    return chosen or None


def _personalise_from(state: ServingState) -> int:
    """Ratings a new user needs for a personal list (the model's new-user policy)."""
    params = getattr(state.recommender, "ranking_params", None) or {}
    return int(params.get("personalise_from", 1))


def _n(n: Any, default: int = 10) -> int:
    try:
        value = int(n)
    except (TypeError, ValueError):
        return default
    return min(max(value, 1), MAX_N)


def _rec_table(items: pd.DataFrame) -> pd.DataFrame:
    """The recommendation DataFrame as shown: readable column names, rounded scores;
    ``platform`` lists every platform the title is on (within the filter) when ``items``
    has ``platforms``."""
    shown = (items["platforms"].map(", ".join) if "platforms" in items
             else items["platform"].astype(str))
    return pd.DataFrame({
        "rank": items["rank"].astype(int).to_numpy(),
        "title": items["title"].astype(str).to_numpy(),
        "platform": shown.to_numpy(),
        "type": items["type"].astype(str).to_numpy(),
        "predicted rating": items["score"].astype(float).round(2).to_numpy(),
        "id": items["item_id"].astype(str).to_numpy(),
    }, columns=REC_COLUMNS)


def _items_table(items: Sequence[RecommendedTitle]) -> pd.DataFrame:
    """API response items as the recommendation table (the ``id`` column: title ids)."""
    frame = pd.DataFrame([i.model_dump() for i in items],
                         columns=["rank", "id", "title", "platform", "platforms", "type", "score"])
    return _rec_table(frame.rename(columns={"id": "item_id"}))


def _empty_recs() -> pd.DataFrame:
    return pd.DataFrame(columns=REC_COLUMNS)


def _order_note(table: pd.DataFrame) -> str:
    """``RANK_NOTE`` when the predicted ratings do not decrease down the ranked list."""
    scores = table["predicted rating"].dropna()
    return "" if scores.is_monotonic_decreasing else " " + RANK_NOTE


def platform_choices(state: ServingState) -> list[str]:
    """Platforms a user can filter on."""
    return list(state.platforms)


def catalog_size(state: ServingState) -> str:
    """"N titles", with the platform listings when a title is on several platforms."""
    listings = len(state.titles_by_id)
    titles = len({t.item_id for t in state.titles_by_id.values()})
    return (f"{titles:,} titles" if titles == listings
            else f"{titles:,} titles ({listings:,} platform listings)")


def rateable_titles(state: ServingState, limit: int = 300) -> list[tuple[str, str]]:
    """``(label, title id)`` of the most-rated titles, for the new-user and similar-title
    dropdowns (title ids as the API takes them: ``POST /recommendations``).

    Only titles the model knows are offered: rating an unknown title would tell
    the model nothing about the new user's taste.
    """
    frame = state.analytics
    known = set(map(str, getattr(state.recommender, "item_ids", frame["item_id"])))
    frame = frame[frame["item_id"].astype(str).isin(known)]
    frame = frame.sort_values(["n_ratings", "title"], ascending=[False, True], kind="mergesort")
    frame = frame.drop_duplicates("item_id").head(limit)
    years = frame["release_year"].astype("Int64").astype(str).replace("<NA>", "?")
    labels = frame["title"].astype(str) + " (" + years + ", " + frame["platform"].astype(str) + ")"
    return list(zip(labels.tolist(), frame["id"].astype(str).tolist(), strict=True))


# --------------------------------------------------------------------------- callbacks


def user_recommendations(state: ServingState, user_id: Any, platforms: Sequence[str] | None,
                         kind: str | None, n: Any = 10) -> tuple[pd.DataFrame, str]:
    """Top-n for an existing user id: the table and a one-line status (cold start or not)."""
    try:
        user = int(user_id)
    except (TypeError, ValueError):
        return _empty_recs(), f"**{excerpt(user_id)} is not a user id**: enter a whole number."
    if not 0 <= user < 2**31:
        return _empty_recs(), f"**{user} is out of range**: user ids are 0 to {2**31 - 1}."
    try:
        recs = state.recommender.recommend(user, n=_n(n), platforms=_platforms(platforms),
                                           kind=_kind(kind))
    except UnknownFilterError as exc:
        return _empty_recs(), f"**{exc}**"
    version = state.manifest.get("version")
    if recs.cold_start:
        why = ("too few ratings for a personal list" if state.recommender.known_user(user)
               else "no ratings")
        status = (f"User {user} has {why} in model {version}: showing the **cold-start** "
                  "list (popular, well-rated titles), not a personal one.")
    else:
        status = f"Personal recommendations for user {user} (model {version})."
    if recs.items.empty:
        status += " No title matches these filters."
    chosen = _platforms(platforms)
    on = [platforms_within(state, str(i), str(p), chosen)
          for i, p in zip(recs.items["item_id"], recs.items["platform"], strict=True)]
    table = _rec_table(recs.items.assign(platforms=on))
    return table, status + _order_note(table)


def ratings_from_inputs(titles: Sequence[str | None], scores: Sequence[Any]
                        ) -> dict[str, float]:
    """``{title_id: rating}`` from the new-user widgets; empty slots are skipped.

    A title chosen twice keeps its last rating; ratings are put on the API's scale
    (clipped to 0.5-5, rounded to the nearest half).
    """
    ratings: dict[str, float] = {}
    for item, score in zip(titles, scores, strict=False):
        if not item or score is None:
            continue
        try:
            value = float(score)
        except (TypeError, ValueError):
            continue
        if value != value:  # NaN from an emptied number box
            continue
        ratings[str(item)] = round(min(max(value, 0.5), 5.0) * 2) / 2
    return ratings


def new_user_recommendations(state: ServingState, ratings: dict[str, float],
                             platforms: Sequence[str] | None, kind: str | None, n: Any = 10
                             ) -> tuple[pd.DataFrame, str]:
    """Top-n for a new user described by a few ``{title_id: score}`` ratings: the API's
    ``POST /recommendations`` function (``state.recommend_new_user``), same checks."""
    try:
        body = NewUserRatingsIn(ratings=[RatingIn(title_id=t, score=s)
                                         for t, s in ratings.items()])
        recs = recommend_new_user(state, body, _n(n), _platforms(platforms), _kind(kind))
    except ValidationError as exc:
        return _empty_recs(), f"**{exc.errors()[0]['msg']}**"
    except (UnknownFilterError, UnknownItemError, RatingsError) as exc:
        return _empty_recs(), f"**{exc}**"
    if recs.cold_start and recs.n_ratings and registry.is_batch_manifest(state.manifest):
        status = (f"The served model (Spark batch lists, {recs.model_version}) cannot use "
                  f"new ratings: the **cold-start** list (popular, well-rated titles) "
                  f"without the {recs.n_ratings} you rated.")
    elif recs.cold_start:
        need = _personalise_from(state)
        status = (f"Rate at least {'one title' if need == 1 else f'{need} titles'} to get "
                  "recommendations of your own; meanwhile, the **cold-start** list (popular, "
                  "well-rated titles).")
    else:
        rated = recs.n_ratings
        status = (f"Recommendations from your {rated} rating{'s' if rated > 1 else ''}"
                  f" (model {recs.model_version}).")
    if not recs.items:
        status += " No title matches these filters."
    table = _items_table(recs.items)
    return table, status + _order_note(table)


def similar_titles(state: ServingState, title_id: Any, n: Any = 10) -> tuple[pd.DataFrame, str]:
    """Titles closest to ``title_id`` in the model's item space (``GET /titles/{id}/similar``):
    the table and a one-line status."""
    empty = pd.DataFrame(columns=SIMILAR_COLUMNS)
    if not title_id:
        return empty, "Pick a title to see the titles most similar to it."
    record = state.titles_by_id.get(str(title_id))
    item_id = record.item_id if record is not None else str(title_id)
    try:
        frame = state.recommender.similar(str(item_id), n=_n(n))
    except KeyError:  # UnknownItemError: not a title of the model
        return empty, f"**{excerpt(title_id)} is not a title the model knows.**"
    name = _title_name(state, str(item_id))
    if frame.empty:
        return empty, (f"Nobody rated *{name}* often enough for the model to place it, "
                       "so it has no neighbours yet.")
    table = pd.DataFrame({
        "rank": range(1, len(frame) + 1),
        "title": frame["title"].astype(str).to_numpy(),
        "platform": frame["platform"].astype(str).to_numpy(),
        "similarity": frame["similarity"].astype(float).round(3).to_numpy(),
        "id": frame["item_id"].astype(str).to_numpy(),
    }, columns=SIMILAR_COLUMNS)
    if frame["basis"].iloc[0] == "content":
        return table, (f"Nobody rated *{name}* often enough for the model to place it: these "
                       "titles are the closest to it in genres, release period, kind and age "
                       "rating.")
    return table, (f"Titles most similar to *{name}* (cosine similarity of the model's "
                   "item factors: viewers who liked one liked the other).")


def _title_name(state: ServingState, item_id: str) -> str:
    rows = state.analytics.loc[state.analytics["item_id"].astype(str) == item_id, "title"]
    return str(rows.iloc[0]) if len(rows) else item_id


def _year(year: Any) -> int | None:
    """A release-year filter from a widget value; empty, 0 or not a whole number = all years
    (Gradio's number box sends 0 when emptied)."""
    if year is None or year == "":
        return None
    try:
        value = float(year)
    except (TypeError, ValueError):
        return None
    return int(value) if value == value and value.is_integer() and value > 0 else None


def analytics_answers(state: ServingState, platform: str | None, year: Any,
                      min_score: Any = 4.0, kind: str | None = None,
                      duration_type: str = "min", rating: str | None = None) -> pd.DataFrame:
    """The seed's questions for one platform/year: a question/answer table.

    Same functions as the API's ``/analytics/*`` endpoints; an invalid filter
    becomes the answer text instead of an exception.
    """
    df = state.analytics
    p = None if platform in (None, "", ALL) else platform
    y, k = _year(year), _kind(kind)
    r = None if rating in (None, "", ALL) else rating
    where = f"{p or 'all platforms'}, {y if y is not None else 'all years'}"
    try:
        score = float(min_score) if min_score is not None else 4.0
    except (TypeError, ValueError):
        score = 4.0
    questions: list[tuple[str, Any]] = [
        (f"Longest title ({duration_type}) on {where}",
         lambda: analytics.longest_title(df, p, y, duration_type or "min", k).message),
        (f"Titles on {where} with mean score > {score:g}",
         lambda: analytics.count_titles_above_score(df, p, y, score, k).message),
        (f"Most frequent actor on {where}", lambda: analytics.top_actor(df, p, y).message),
        (f"Titles rated {r or '(any rating)'} on {p or 'all platforms'}",
         lambda: analytics.titles_per_maturity_rating(df, r, p).message),
    ]
    rows = []
    for question, answer in questions:
        try:
            rows.append((question, answer()))
        except (UnknownFilterError, ValueError) as exc:
            rows.append((question, f"invalid filter: {exc}"))
    return pd.DataFrame(rows, columns=["question", "answer"])


def count_tables(state: ServingState, kind: str | None = None, year: Any = None,
                 top_n: int = 15) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Titles per platform, productions per country (top ``top_n``) and titles per rating."""
    df = state.analytics
    k, y = _kind(kind), _year(year)
    per_platform = analytics.titles_per_platform(df, k).to_frame()
    per_country = analytics.productions_per_country(df, k, y, top_n=top_n).to_frame()
    per_rating = analytics.titles_per_maturity_rating(df).to_frame()
    return per_platform, per_country, per_rating


def rating_choices(state: ServingState) -> list[str]:
    ratings = state.analytics["rating"].dropna().astype(str).unique().tolist()
    return [ALL, *sorted(ratings)]


# --------------------------------------------------------------------------- layout


#: Ids of the top-level tabs (``build_demo(selected_tab=...)``).
TABS = ("recommendations", "similar", "analytics")


def build_demo(state: ServingState, selected_tab: str = "recommendations") -> Any:
    """The Gradio ``Blocks`` app bound to ``state`` (not launched), opening on
    ``selected_tab`` (one of ``TABS``)."""
    if selected_tab not in TABS:
        raise ValueError(f"selected_tab must be one of {TABS}, got {selected_tab!r}")
    import gradio as gr

    platforms = platform_choices(state)
    kinds = [ALL, "Movie", "TV Show"]
    titles = rateable_titles(state)
    version = state.manifest.get("version")
    # Initial contents are computed here, not in a page-load event: the page shows
    # data as soon as it renders, without a round-trip through Gradio's queue.
    first_user = state.active_users[0] if state.active_users else 1
    first_recs, first_status = user_recommendations(state, first_user, [], ALL, 10)
    d_platform, d_year = analytics.default_query(state.analytics)
    first_answers = analytics_answers(state, d_platform, d_year)
    first_counts = count_tables(state, None, d_year)
    first_title = titles[0][1] if titles else None  # the most rated title
    first_similar, first_similar_status = similar_titles(state, first_title, 10)

    with gr.Blocks(title="Streaming recommender", analytics_enabled=False) as demo:
        gr.Markdown(f"# Streaming recommender\nModel **{version}**, trained "
                    f"{state.manifest.get('created_at', '?')}; {catalog_size(state)} on "
                    f"{', '.join(platforms)}.")
        with gr.Tabs(selected=selected_tab):
            with gr.Tab("Recommendations", id="recommendations"):
                with gr.Row():
                    platform_in = gr.Dropdown(platforms, value=[], multiselect=True,
                                              label="Platforms (empty = all)")
                    kind_in = gr.Radio(kinds, value=ALL, label="Type")
                    n_in = gr.Slider(1, MAX_N, value=10, step=1, label="How many")
                with gr.Tab("Existing user"):
                    with gr.Row():
                        user_in = gr.Number(value=first_user, precision=0, label="User id")
                        user_btn = gr.Button("Recommend", variant="primary")
                    user_status = gr.Markdown(first_status)
                    user_out = gr.Dataframe(first_recs, label="Recommendations",
                                            interactive=False, column_widths=REC_WIDTHS)
                with gr.Tab("New user: rate a few titles"):
                    title_ins, score_ins = [], []
                    for slot in range(RATE_SLOTS):
                        with gr.Row():
                            title_ins.append(gr.Dropdown(
                                titles, value=titles[slot][1] if slot < len(titles) else None,
                                label=f"Title {slot + 1}", filterable=True, scale=4))
                            score_ins.append(gr.Slider(0.5, 5, value=4.0 if slot < 3 else 2.0,
                                                       step=0.5, label="Your rating", scale=1))
                    new_btn = gr.Button("Recommend from my ratings", variant="primary")
                    new_status = gr.Markdown()
                    new_out = gr.Dataframe(headers=REC_COLUMNS, label="Recommendations",
                                           interactive=False, column_widths=REC_WIDTHS)

                user_btn.click(
                    lambda u, p, k, n: user_recommendations(state, u, p, k, n),
                    inputs=[user_in, platform_in, kind_in, n_in], outputs=[user_out, user_status],
                )

                def _new(p: list[str], k: str, n: int, *values: Any) -> tuple[pd.DataFrame, str]:
                    ratings = ratings_from_inputs(values[:RATE_SLOTS], values[RATE_SLOTS:])
                    return new_user_recommendations(state, ratings, p, k, n)

                new_btn.click(_new, inputs=[platform_in, kind_in, n_in, *title_ins, *score_ins],
                              outputs=[new_out, new_status])

            with gr.Tab("Similar titles", id="similar"):
                with gr.Row():
                    s_title = gr.Dropdown(titles, value=first_title, label="Title",
                                          filterable=True, scale=4)
                    s_n = gr.Slider(1, MAX_N, value=10, step=1, label="How many", scale=1)
                    s_btn = gr.Button("Find similar", variant="primary", scale=1)
                s_status = gr.Markdown(first_similar_status)
                s_out = gr.Dataframe(first_similar, label="Similar titles", interactive=False)
                s_btn.click(lambda t, n: similar_titles(state, t, n), inputs=[s_title, s_n],
                            outputs=[s_out, s_status])

            with gr.Tab("Platform analytics", id="analytics"):
                with gr.Row():
                    # Open on a slice that has answers: the largest platform, its busiest year.
                    a_platform = gr.Dropdown([ALL, *platforms], value=d_platform or ALL,
                                             label="Platform")
                    a_year = gr.Number(value=d_year, precision=0,
                                       label="Release year (0 = all years)")
                    a_kind = gr.Radio(kinds, value=ALL, label="Type")
                with gr.Row():
                    a_score = gr.Slider(0.5, 5, value=4.0, step=0.5, label="Mean score above")
                    a_dtype = gr.Radio(["min", "season"], value="min", label="Duration unit")
                    a_rating = gr.Dropdown(rating_choices(state), value=ALL, label="Maturity rating")
                a_btn = gr.Button("Answer", variant="primary")
                a_out = gr.Dataframe(first_answers, label="Answers",
                                     interactive=False, wrap=True)
                with gr.Row():
                    c_platform = gr.Dataframe(first_counts[0], label="Titles per platform",
                                              interactive=False)
                    c_country = gr.Dataframe(first_counts[1], label="Productions per country",
                                             interactive=False)
                    c_rating = gr.Dataframe(first_counts[2], label="Titles per maturity rating",
                                            interactive=False)

                def _analytics(p: str, y: Any, k: str, s: float, d: str, r: str
                               ) -> tuple[pd.DataFrame, ...]:
                    return (analytics_answers(state, p, y, s, k, d, r), *count_tables(state, k, y))

                a_inputs = [a_platform, a_year, a_kind, a_score, a_dtype, a_rating]
                a_outputs = [a_out, c_platform, c_country, c_rating]
                a_btn.click(_analytics, inputs=a_inputs, outputs=a_outputs)
    return demo


# --------------------------------------------------------------------------- screenshot

#: Flags that keep headless Chromium quiet and off the network (it only loads loopback).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--disable-dev-shm-usage",
)


def find_chromium() -> str | None:
    """Path of Debian's chromium (``apt-get install chromium``), or ``None``."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_demo(state: ServingState, *, screenshot: str | os.PathLike[str] | None = None,
                tab: str = "recommendations", chromium: str | None = None, width: int = 1280,
                height: int = 1400, wait_ms: int = 20000, timeout_s: float = 120.0) -> str:
    """Launch the demo on a free loopback port, load it in headless Chromium and return
    the rendered page's DOM (what a person would see, as HTML); with ``screenshot``,
    also save a PNG of it there. The demo is closed afterwards.

    ``tab`` picks the tab the page opens on (``TABS``). Raises ``FileNotFoundError``
    when no Chromium is installed and ``RuntimeError`` when it renders nothing.
    """
    import subprocess
    import tempfile
    from pathlib import Path

    browser = chromium or find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium found: `apt-get install -y chromium`")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_demo(state, selected_tab=tab)
    for attempt in range(1, 6):
        port = _free_port()
        try:
            demo.launch(server_name="127.0.0.1", server_port=port, share=False,
                        ssr_mode=False, prevent_thread_lock=True, quiet=True)
            break
        except OSError:  # another process took the free port before the demo bound it
            if attempt == 5:
                raise

    def run(*action: str) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="recsys-chromium-") as profile:
            cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                   f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}",
                   *action, f"http://127.0.0.1:{port}/"]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  check=False)

    try:
        page = run("--dump-dom")
        if screenshot is not None:
            out_path = Path(screenshot).resolve()
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.unlink(missing_ok=True)
            shot = run(f"--screenshot={out_path}")
            if not out_path.is_file() or out_path.stat().st_size == 0:
                raise RuntimeError(f"chromium wrote no screenshot (exit {shot.returncode}): "
                                   f"{shot.stderr[-2000:]}")
    finally:
        demo.close(verbose=False)
    if "<body" not in page.stdout:
        raise RuntimeError(f"chromium rendered no page (exit {page.returncode}): "
                           f"{page.stderr[-2000:]}")
    return page.stdout


def screenshot_demo(state: ServingState, out: str | os.PathLike[str], *,
                    tab: str = "recommendations", **options: Any) -> str:
    """Save a PNG of the demo's ``tab`` as headless Chromium renders it; returns its path."""
    render_demo(state, screenshot=out, tab=tab, **options)
    return str(out)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``recsys-demo``: load the artifacts and serve the demo on loopback."""
    parser = argparse.ArgumentParser(prog="recsys-demo",
                                     description="Serve the Gradio demo of the recommender.")
    parser.add_argument("--host", default=os.environ.get("RECSYS_DEMO_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=PORT,
                        help="port to listen on (default $RECSYS_DEMO_PORT or 7860)")
    parser.add_argument("--root", default=None,
                        help="project root (default: the repository or $RECSYS_ROOT)")
    args = parser.parse_args(argv)
    fill_from_environment(parser, args, {"port": ("RECSYS_DEMO_PORT", "7860", PORT)})
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no update check

    def body() -> None:
        check_port(args.host, args.port)  # before the load, as `recsys-serve` does
        demo = build_demo(load_state(project_paths(args.root)))
        try:
            demo.launch(server_name=args.host, server_port=args.port, share=False,
                        ssr_mode=False, show_error=True)
        except OSError as exc:
            if exc.filename:
                raise  # a file, not the port: run_command names it
            # Gradio could not bind after `check_port` passed (taken while loading); its
            # own message points at GRADIO_SERVER_PORT, which this command does not read
            raise DataError(f"cannot listen on {args.host}:{args.port}: the port was taken "
                            "while the demo loaded; choose another --port") from None

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
