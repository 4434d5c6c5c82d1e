"""The Gradio demo's callbacks, called as plain functions on the fixture project,
plus one real page load in headless Chromium (skipped only when chromium is absent:
CI installs it with `apt-get install -y chromium`)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import pytest
from serving_fixture import KNOWN_USER, PLATFORMS, UNKNOWN_USER, serving_project

from recsys_utils.explore import analytics
from recsys_utils.serving import demo
from recsys_utils.serving.state import ServingState, load_state


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> ServingState:
    return load_state(serving_project(tmp_path_factory))


def test_user_recommendations_table_and_status(state: ServingState):
    table, status = demo.user_recommendations(state, KNOWN_USER, ["netflix"], "Movie", 4)
    assert list(table.columns) == demo.REC_COLUMNS
    assert len(table) == 4 and list(table["rank"]) == [1, 2, 3, 4]
    assert set(table["platform"]) == {"netflix"} and set(table["type"]) == {"Movie"}
    assert table["predicted rating"].between(0.5, 5).all()
    assert "Personal" in status and "cold-start" not in status
    # Same ranking as the library call the API makes.
    recs = state.recommender.recommend(KNOWN_USER, n=4, platforms=["netflix"], kind="Movie")
    assert list(table["id"]) == list(recs.items["item_id"])


def test_unknown_user_is_flagged_cold_start(state: ServingState):
    table, status = demo.user_recommendations(state, UNKNOWN_USER, [], demo.ALL, 5)
    assert len(table) == 5 and "cold-start" in status


@pytest.mark.parametrize("bad", ["abc", None, -3, 2**40])
def test_bad_user_id_is_a_message_not_an_exception(state: ServingState, bad):
    table, status = demo.user_recommendations(state, bad, [], demo.ALL, 5)
    assert table.empty and list(table.columns) == demo.REC_COLUMNS
    assert status.startswith("**")


def test_n_is_bounded(state: ServingState):
    table, _ = demo.user_recommendations(state, KNOWN_USER, [], demo.ALL, 10_000)
    assert 0 < len(table) <= demo.MAX_N
    table, _ = demo.user_recommendations(state, KNOWN_USER, [], demo.ALL, "x")
    assert len(table) == 10


def test_ratings_from_inputs_skips_empty_slots_and_clips():
    got = demo.ratings_from_inputs(["ns1", None, "hs2", "as3", ""], [7, 3, 0.0, float("nan"), 4])
    assert got == {"ns1": 5.0, "hs2": 0.5}


def test_new_user_recommendations_exclude_the_rated_titles(state: ServingState):
    offered = demo.rateable_titles(state)
    assert offered and all(label and item for label, item in offered)
    rated = {offered[0][1]: 5.0, offered[1][1]: 1.0}
    table, status = demo.new_user_recommendations(state, rated, [], demo.ALL, 6)
    assert len(table) == 6 and "2 ratings" in status
    assert not set(rated) & set(table["id"])


def test_new_user_without_ratings_gets_a_hint(state: ServingState):
    table, status = demo.new_user_recommendations(state, {}, [], demo.ALL, 6)
    assert table.empty and "Rate at least one" in status


def test_analytics_answers_match_the_library(state: ServingState):
    table = demo.analytics_answers(state, "netflix", 2001, 3.0, demo.ALL, "min", demo.ALL)
    assert list(table.columns) == ["question", "answer"] and len(table) == 4
    longest = analytics.longest_title(state.analytics, "netflix", 2001, "min")
    assert table.loc[0, "answer"] == longest.message


def test_analytics_invalid_filter_becomes_the_answer(state: ServingState):
    table = demo.analytics_answers(state, "disney", None, 4.0, demo.ALL, "min", demo.ALL)
    # every question filters on the platform, so every answer says what was wrong
    assert table["answer"].str.startswith("invalid filter").all()
    assert table["answer"].str.contains("'disney'").all()
    assert table["answer"].str.contains("'netflix'").all()  # ... and lists the valid ones


def test_count_tables(state: ServingState):
    per_platform, per_country, per_rating = demo.count_tables(state, "Movie", None)
    assert set(per_platform["platform"]) == set(PLATFORMS)
    assert per_platform["n_titles"].sum() == (state.analytics["type"] == "Movie").sum()
    assert isinstance(per_country, pd.DataFrame) and "country" in per_country.columns
    assert set(per_rating.columns) == {"rating", "n_titles"}


def test_build_demo_has_both_tabs_filled_at_build_time(state: ServingState):
    blocks = demo.build_demo(state, selected_tab="analytics")
    labels = {getattr(b, "label", None) for b in blocks.blocks.values()}
    assert {"Recommendations", "Platform analytics", "Answers"} <= labels
    tables = [b for b in blocks.blocks.values() if getattr(b, "label", None) == "Answers"]
    assert tables[0].value["data"], "the answers table is filled before any event"
    with pytest.raises(ValueError, match="selected_tab"):
        demo.build_demo(state, selected_tab="nope")


@pytest.mark.parametrize("tab", demo.TABS)
def test_demo_page_renders_in_headless_chromium(state: ServingState, tmp_path: Path, tab: str):
    """The real page in a real browser: the tab shows the data computed for it."""
    if demo.find_chromium() is None:
        pytest.skip("chromium not installed (CI: `apt-get install -y chromium`)")
    png = tmp_path / f"{tab}.png"
    page = demo.render_demo(state, screenshot=png, tab=tab, height=900)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Streaming recommender" in page
    if tab == "recommendations":
        user = state.active_users[0]
        first = state.recommender.recommend(user, n=10).items["title"].iloc[0]
        assert f"Personal recommendations for user {user}" in page
    else:
        first = analytics.longest_title(state.analytics, *analytics.default_query(
            state.analytics)).title
    assert html.escape(first, quote=False) in page, f"{first!r} is not on the page"


def test_demo_cli_refuses_to_start_without_artifacts(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    assert demo.main(["--root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "make pipeline" in err
