"""Where each served ranking parameter came from (``ranking.provenance``)."""

from __future__ import annotations

from recsys_utils.ranking.provenance import NOT_TUNED_WHY, parameter_sources, untuned
from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS

RIVALS = [{"rival": "als (score)", "configurations": 4}, {"rival": "ease (binary)",
                                                         "configurations": 2},
          {"rival": "popularity (baseline)", "configurations": 1}]


def _record(**changes) -> dict:
    return {"grid": {"als": {"als_reg": [0.1, 1.0], "weighting": ["score"]},
                     "ease": {"l2": [10.0, 50.0], "weighting": ["binary"]}},
            "rivals": RIVALS, "rerank": {"tried": False}, "new_users": {"tried": False},
            **changes}


def test_each_parameter_is_traced_to_what_chose_it():
    chosen = {**DEFAULT_RANKING_PARAMS, "ranker": "als", "als_reg": 1.0}
    sources = parameter_sources(chosen, _record())
    assert list(sources) == list(DEFAULT_RANKING_PARAMS)
    assert sources["ranker"] == ("validation: the best of 6 configurations of 2 rivals, "
                                 "by the rule recorded")  # popularity is no configuration
    assert sources["als_reg"] == "validation: chosen among [0.1, 1.0]"
    assert sources["weighting"] == "the grid's only value (not compared)"
    # the chosen ranker's grid decides, not another's
    assert sources["l2"].startswith("unused by the served ranker (als")
    assert sources["factors"] == "default (DEFAULT_RANKING_PARAMS), not tuned"
    # read whatever the ranker: never "unused"
    assert sources["min_item_ratings"] == f"default, not tuned: {NOT_TUNED_WHY['min_item_ratings']}"
    assert sources["rerank"] == "off: the re-ranker was not tried"
    assert sources["cold_start_list"] == "default (DEFAULT_RANKING_PARAMS), not tuned"
    assert set(untuned(sources)) >= {"factors", "als_alpha", "recency", "cold_start_list"}
    assert "als_reg" not in untuned(sources) and "l2" not in untuned(sources)


def test_the_rerankers_and_the_new_user_policys_choices_are_named():
    chosen = {**DEFAULT_RANKING_PARAMS, "weighting": "binary", "rerank": {"weights": [1.0]}}
    adopted = _record(rerank={"tried": True, "adopted": True,
                              "validation": {"popularity_penalty": 0.25}},
                      new_users={"tried": True, "held_out_users": 134})
    sources = parameter_sources(chosen, adopted)
    assert sources["rerank"].startswith("validation: weights fitted on the validation labels")
    assert "popularity penalty 0.25" in sources["rerank"]
    for key in ("cold_start_list", "personalise_from", "rerank_from"):
        assert sources[key] == ("validation on 134 users held out whole "
                                "(tuning.ranking.new_users)")
    assert sources["score_center"].startswith("unused by the served ranker (ease, binary)")
    refused = parameter_sources(chosen, _record(rerank={"tried": True, "adopted": False,
                                                        "outcome": "no gain"}))
    assert refused["rerank"] == "off: validation did not adopt it (no gain)"


def test_without_tuning_hand_set_values_are_told_apart_from_defaults():
    sources = parameter_sources(DEFAULT_RANKING_PARAMS, None, given={"l2": 5.0})
    assert sources["l2"] == "set by hand (ranking_params), not validated"
    assert sources["ranker"] == "default (DEFAULT_RANKING_PARAMS), not tuned"
    assert not any(s.startswith("validation") for s in sources.values())
    assert "l2" in untuned(sources)
