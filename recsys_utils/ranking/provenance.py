"""Where each served ranking parameter came from: the manifest's ``sources``.

The tuning record (``evaluation.TuningResult.record``) holds the grid, the rivals, the
re-ranker's and the new-user policy's choices; which of the served parameters those decided,
and which were left at ``DEFAULT_RANKING_PARAMS``, took reading the grid against the code.
``parameter_sources`` says it for every parameter, in one line each, so a reader of a
manifest (or of ``03_modeling``'s table) sees at once what validation chose, what a grid
fixed to a single value, what was never tuned (and why that is acceptable) and what the
chosen ranker does not read at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from recsys_utils.ranking.rankers import RANKER_PARAMS
from recsys_utils.ranking.recommender import DEFAULT_RANKING_PARAMS

__all__ = ["NOT_TUNED_WHY", "parameter_sources", "sources_table", "untuned"]

#: The new-user policy (``new_users.choose_new_user_policy``).
NEW_USER_KEYS = ("cold_start_list", "personalise_from", "rerank_from")

#: Read whatever the ranker: the titles every ranker (and ``similar``) scores.
ALWAYS_READ = ("min_item_ratings", "max_ease_items")

#: Why a parameter the served model reads is left at its default rather than tuned.
NOT_TUNED_WHY: dict[str, str] = {
    "ease_weight": "the scale the other weights are relative to",
    "min_item_ratings": "titles with fewer ratings get no score of their own (1-3 tried "
                        "in benchmarks/ranking_variants.py: within +-0.001)",
    "max_ease_items": "a memory bound (EASE's matrix is dense titles x titles)",
    "score_center": "the middle of the 0.5-5 scale",
    "rating_weight": "predicted ratings added to the ranking never gained "
                     "(benchmarks/ranking_variants.py)",
    "prior_count": "the Bayesian average's pseudo-ratings (cold-start ties, a re-ranker feature)",
    "n_factors": "similar titles only, which no ranking metric scores",
}


def _grid_of(grid: Mapping[str, Any] | None, ranker: str) -> dict[str, list[Any]]:
    """The chosen ranker's part of a grid, ``{ranker: {param: values}}`` or flat."""
    if not grid:
        return {}
    if any(isinstance(v, Mapping) for v in grid.values()):
        return dict(grid.get(ranker) or {})
    return dict(grid)


def _rerank_source(record: Mapping[str, Any]) -> str:
    rerank = record.get("rerank") or {}
    if not rerank.get("tried"):
        return "off: the re-ranker was not tried"
    if not rerank.get("adopted"):
        return f"off: validation did not adopt it ({rerank.get('outcome', '')})"
    penalty = (rerank.get("validation") or {}).get("popularity_penalty")
    return ("validation: weights fitted on the validation labels, adopted because weights "
            "fitted one window earlier gained on validation"
            + (f", popularity penalty {penalty:g} for the coverage floor" if penalty else "")
            + "; its structure (candidates, sequential window) is rerank.DEFAULT_STRUCTURE, "
            "not tuned (tuning.ranking.rerank)")


def parameter_sources(chosen: Mapping[str, Any], record: Mapping[str, Any] | None = None,
                      given: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``{parameter: where its served value came from}`` for every ranking parameter.

    ``chosen``: the served ``ranking_params``; ``record``: the tuning record they were chosen
    by (``None``: not tuned in this run); ``given``: the parameters a caller set by hand when
    tuning was off (``register_champion(ranking_params=...)``)."""
    ranker = chosen["ranker"]
    tuned = bool(record) and record.get("tuned", True) is not False
    grid = _grid_of(record.get("grid"), ranker) if tuned else {}
    read_by_other_rankers = {p for name, keys in RANKER_PARAMS.items() if name != ranker
                             for p in keys} - set(RANKER_PARAMS[ranker]) - set(ALWAYS_READ)
    new_users = (record or {}).get("new_users") or {}
    sources: dict[str, str] = {}
    for key in DEFAULT_RANKING_PARAMS:
        values = grid.get(key)
        if key in (given or {}):
            source = "set by hand (ranking_params), not validated"
        elif key == "ranker" and tuned:
            rivals = [r for r in record.get("rivals") or [] if r.get("configurations")
                      and not str(r.get("rival", "")).startswith("popularity (baseline)")]
            source = (f"validation: the best of {sum(r['configurations'] for r in rivals)} "
                      f"configurations of {len(rivals)} rivals, by the rule recorded")
        elif key == "rerank" and tuned:
            source = _rerank_source(record)
        elif key in NEW_USER_KEYS and new_users.get("tried"):
            source = (f"validation on {new_users.get('held_out_users')} users held out whole "
                      "(tuning.ranking.new_users)")
        elif values is not None and len(values) > 1:
            source = f"validation: chosen among {list(values)}"
        elif values is not None:
            source = "the grid's only value (not compared)"
        elif key in read_by_other_rankers or (key == "score_center"
                                              and chosen.get("weighting") == "binary"):
            source = f"unused by the served ranker ({ranker}, {chosen.get('weighting')})"
        elif key in NOT_TUNED_WHY:
            source = f"default, not tuned: {NOT_TUNED_WHY[key]}"
        else:
            source = "default (DEFAULT_RANKING_PARAMS), not tuned"
        sources[key] = source
    return sources


def sources_table(chosen: Mapping[str, Any], sources: Mapping[str, str]) -> pd.DataFrame:
    """One row per parameter: its served value and where it came from (the re-ranker's
    weights summarised by their number)."""
    def shown(key: str) -> Any:
        value = chosen.get(key)
        if key == "rerank" and isinstance(value, Mapping):
            return f"{len(value.get('weights', []))} weights"
        return value
    return pd.DataFrame({"value": [str(shown(k)) for k in sources],
                         "source": list(sources.values())},
                        index=pd.Index(list(sources), name="parameter"))


def untuned(sources: Mapping[str, str]) -> list[str]:
    """The parameters the served model reads but no validation chose."""
    return [key for key, source in sources.items()
            if source.startswith(("default", "set by hand"))]
