"""The Gradio demo's callbacks, called as plain functions on the fixture project,
plus one real page load in headless Chromium (skipped only when chromium is absent:
CI installs it with `apt-get install -y chromium`)."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import pandas as pd
import pytest
from serving_fixture import (
    KNOWN_USER,
    PLATFORMS,
    RATED_ID,
    UNKNOWN_USER,
    UNRATED_ID,
    serving_project,
)

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


def test_a_film_on_every_platform_shows_them_all(state: ServingState):
    everywhere = ", ".join(sorted(PLATFORMS))  # the fixture's film: one title, three listings
    table, _ = demo.user_recommendations(state, UNKNOWN_USER, [], demo.ALL, 60)
    assert table.loc[table["id"] == "as10", "platform"].tolist() == [everywhere]
    table, _ = demo.user_recommendations(state, UNKNOWN_USER, ["hulu", "netflix"], demo.ALL, 60)
    assert table.loc[table["id"] == "as10", "platform"].tolist() == ["hulu, netflix"]
    table, _ = demo.new_user_recommendations(state, {RATED_ID: 4.0}, None, None, 60)
    assert table.loc[table["id"] == "as10", "platform"].tolist() == [everywhere]


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
    assert demo.ratings_from_inputs(["ns1"], [3.8]) == {"ns1": 4.0}  # the half-star scale


def test_new_user_recommendations_exclude_the_rated_titles(state: ServingState):
    offered = demo.rateable_titles(state)
    assert offered and all(label and item for label, item in offered)
    rated = {offered[0][1]: 5.0, offered[1][1]: 1.0}
    table, status = demo.new_user_recommendations(state, rated, [], demo.ALL, 6)
    assert len(table) == 6 and "2 ratings" in status
    assert not set(rated) & set(table["id"])


def test_new_user_without_ratings_gets_the_cold_start_list_and_a_hint(state: ServingState):
    table, status = demo.new_user_recommendations(state, {}, [], demo.ALL, 6)
    assert "Rate at least one" in status and "cold-start" in status
    assert list(table["id"]) == list(state.recommender.recommend(UNKNOWN_USER, n=6)
                                     .items["item_id"])


def test_new_user_tab_is_the_api_function(state: ServingState):
    """One code path: the demo's table is POST /recommendations's answer, and its
    errors are the API's (unknown title, unknown platform)."""
    from recsys_utils.serving.schemas import NewUserRatingsIn
    from recsys_utils.serving.state import recommend_new_user

    rated = {RATED_ID: 4.5, "hs2": 1.0}
    table, _ = demo.new_user_recommendations(state, rated, ["hulu"], "Movie", 5)
    body = NewUserRatingsIn.model_validate(
        {"ratings": [{"title_id": t, "score": s} for t, s in rated.items()]})
    api = recommend_new_user(state, body, 5, ["hulu"], "Movie")
    assert list(table["id"]) == [i.id for i in api.items] and len(table) == 5
    assert list(table["predicted rating"]) == [round(i.score, 2) for i in api.items]
    table, status = demo.new_user_recommendations(state, {"zz404": 3.0}, [], demo.ALL, 5)
    assert table.empty and "unknown title id 'zz404'" in status
    table, status = demo.new_user_recommendations(state, rated, ["disney"], demo.ALL, 5)
    assert table.empty and "disney" in status


@pytest.mark.parametrize("user", [1, 2, 3, 4, 5, UNKNOWN_USER])
def test_recommendations_are_in_rank_order_and_say_why_ratings_are_not(state: ServingState,
                                                                        user: int):
    """Rows follow the model's ranking; when the predicted ratings do not fall down the
    list, the status says why (two models answer two questions)."""
    table, status = demo.user_recommendations(state, user, [], demo.ALL, 10)
    assert list(table["rank"]) == list(range(1, len(table) + 1))
    assert list(table["id"]) == list(state.recommender.recommend(user, n=10).items["item_id"])
    monotone = table["predicted rating"].is_monotonic_decreasing
    assert (demo.RANK_NOTE in status) is (not monotone)


def test_similar_titles_match_the_model(state: ServingState):
    table, status = demo.similar_titles(state, RATED_ID, 5)
    want = state.recommender.similar(RATED_ID, n=5)
    assert list(table.columns) == demo.SIMILAR_COLUMNS
    assert list(table["id"]) == list(want["item_id"]) and list(table["rank"]) == [1, 2, 3, 4, 5]
    assert table["similarity"].is_monotonic_decreasing
    assert state.titles_by_id[RATED_ID].title in status


def test_a_title_nobody_rated_gets_its_neighbours_in_content(state: ServingState):
    table, status = demo.similar_titles(state, UNRATED_ID, 5)
    assert len(table) == 5 and "closest to it in genres" in status
    assert state.titles_by_id[UNRATED_ID].title in status
    assert list(table["id"]) == list(state.recommender.similar(
        state.titles_by_id[UNRATED_ID].item_id, n=5)["item_id"])


@pytest.mark.parametrize(("item", "says"), [
    ("zz999", "not a title the model knows"),
    (None, "Pick a title"),
])
def test_similar_titles_without_an_answer_say_why(state: ServingState, item, says: str):
    table, status = demo.similar_titles(state, item, 5)
    assert table.empty and list(table.columns) == demo.SIMILAR_COLUMNS
    assert says in status


def test_bad_input_is_quoted_as_a_short_excerpt(state: ServingState):
    garbage = "\x00\x01" * 300
    _, status = demo.user_recommendations(state, garbage, [], demo.ALL, 5)
    assert status.isprintable() and len(status) < 150
    _, status = demo.similar_titles(state, garbage, 5)
    assert status.isprintable() and len(status) < 150


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


def test_catalog_size_counts_a_title_on_two_platforms_once(state: ServingState):
    listings = len(state.titles_by_id)
    n = listings - 2  # the fixture's film on every platform: three listings, one title
    assert demo.catalog_size(state) == f"{n:,} titles ({listings:,} platform listings)"
    first = next(iter(state.titles_by_id.values()))
    copy = first.model_copy(update={"id": "zz" + first.id, "platform": "another"})
    one_more = dataclasses.replace(state, titles_by_id={**state.titles_by_id, copy.id: copy})
    assert demo.catalog_size(one_more) == f"{n:,} titles ({listings + 1:,} platform listings)"


def test_build_demo_has_every_tab_filled_at_build_time(state: ServingState):
    blocks = demo.build_demo(state, selected_tab="analytics")
    labels = {getattr(b, "label", None) for b in blocks.blocks.values()}
    assert {"Recommendations", "Similar titles", "Platform analytics", "Answers"} <= labels
    for label in ("Answers", "Similar titles"):
        tables = [b for b in blocks.blocks.values()
                  if getattr(b, "label", None) == label and hasattr(b, "value")
                  and isinstance(b.value, dict) and "data" in b.value]
        assert tables and tables[0].value["data"], f"{label} is filled before any event"
    with pytest.raises(ValueError, match="selected_tab"):
        demo.build_demo(state, selected_tab="nope")


@pytest.mark.parametrize("tab", demo.TABS)
def test_demo_page_renders_in_headless_chromium(state: ServingState, tmp_path: Path, tab: str,
                                                busy_port: int,
                                                monkeypatch: pytest.MonkeyPatch):
    """The real page in a real browser: the tab shows the data computed for it. On the
    first tab, the first free port found is taken before the demo binds it (as another
    process may): the demo starts on the next one."""
    if demo.find_chromium() is None:
        pytest.skip("chromium not installed (CI: `apt-get install -y chromium`)")
    offered: list[int] = []
    if tab == demo.TABS[0]:
        free_port = demo._free_port

        def busy_first() -> int:
            offered.append(free_port() if offered else busy_port)
            return offered[-1]

        monkeypatch.setattr(demo, "_free_port", busy_first)
    png = tmp_path / f"{tab}.png"
    page = demo.render_demo(state, screenshot=png, tab=tab, height=900)
    if tab == demo.TABS[0]:
        assert len(offered) == 2 and offered[0] == busy_port
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Streaming recommender" in page
    if tab == "recommendations":
        user = state.active_users[0]
        first = state.recommender.recommend(user, n=10).items["title"].iloc[0]
        assert f"Personal recommendations for user {user}" in page
    elif tab == "similar":
        first = state.recommender.similar(demo.rateable_titles(state)[0][1], n=10)["title"].iloc[0]
    else:
        first = analytics.longest_title(state.analytics, *analytics.default_query(
            state.analytics)).title
    assert html.escape(first, quote=False) in page, f"{first!r} is not on the page"


def test_demo_cli_refuses_to_start_without_artifacts(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    # a free port: 7860 may be taken by a running demo
    assert demo.main(["--root", str(tmp_path / "empty"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "make pipeline" in err


@pytest.mark.parametrize("value", ["99999", "-1", "abc"])
def test_demo_cli_port_out_of_range_is_a_usage_error(value: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as stop:
        demo.main(["--root", str(tmp_path), "--port", value])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert f"error: argument --port: expected a whole number from 0 to 65535, got '{value}'" in err


def test_demo_cli_bad_port_variable_is_one_line_naming_it(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("RECSYS_DEMO_PORT", "abc")
    with pytest.raises(SystemExit) as stop:  # --help still works
        demo.main(["--help"])
    assert stop.value.code == 0 and "usage: recsys-demo" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        demo.main(["--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert "error: environment variable RECSYS_DEMO_PORT: expected a whole number" in err


def test_demo_cli_busy_port_is_one_line_before_loading(busy_port: int,
                                                       tmp_path_factory: pytest.TempPathFactory,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]):
    def not_loaded(*_args: object) -> None:
        raise AssertionError("the state was loaded before the port was checked")

    root = serving_project(tmp_path_factory).root
    monkeypatch.setattr(demo, "load_state", not_loaded)
    assert demo.main(["--root", str(root), "--port", str(busy_port)]) == 2
    assert capsys.readouterr().err == (f"error: cannot listen on 127.0.0.1:{busy_port}: "
                                       "address already in use; choose another --port\n")


def test_demo_cli_port_taken_while_loading_is_one_line(busy_port: int,
                                                       tmp_path_factory: pytest.TempPathFactory,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]):
    """Free at the check, taken by the time Gradio binds: Gradio's OSError (which points at
    GRADIO_SERVER_PORT) becomes the same one line naming --port."""
    root = serving_project(tmp_path_factory).root
    monkeypatch.setattr(demo, "check_port", lambda host, port: None)
    assert demo.main(["--root", str(root), "--port", str(busy_port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{busy_port}: ")
    assert err.endswith("choose another --port\n") and err.count("\n") == 1


def test_the_demo_says_how_many_ratings_a_personal_list_needs(state: ServingState):
    policy = dataclasses.replace(
        state, recommender=state.recommender.with_ranking(personalise_from=10_000))
    _, status = demo.user_recommendations(policy, KNOWN_USER, [], demo.ALL, 5)
    assert "too few ratings for a personal list" in status and "cold-start" in status
    offered = demo.rateable_titles(state)
    table, status = demo.new_user_recommendations(policy, {offered[0][1]: 5.0}, [], demo.ALL, 4)
    assert "Rate at least 10000 titles" in status and offered[0][1] not in set(table["id"])
