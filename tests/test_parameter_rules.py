"""The parameters' value rules (recsys_utils.run.parameter_rules) on the committed notebooks.

A bad value is refused by ``resolve_parameters`` (so by ``recsys-pipeline`` before any
notebook runs; the CLI test is in test_pipeline.py), naming origin, notebook, parameter,
rule and value; edge values the code accepts pass; the table cannot drift from the
notebooks (every key is declared, every default and preset passes) nor from the code
whose choices it lists.
"""

from __future__ import annotations

import ast
from typing import Any

import pandas as pd
import pytest

from recsys_utils.paths import PROJECT_ROOT
from recsys_utils.run import parameter_rules, pipeline
from recsys_utils.run.parameter_rules import RULES, ListOf, Number, OneOf, Text, rule_for
from recsys_utils.run.pipeline import (
    ParameterError,
    ParamsFile,
    load_params_file,
    resolve_parameters,
)

NOTEBOOKS = PROJECT_ROOT / "notebooks"
NO_FILE = ParamsFile({}, {})
SEED_RULE = "an integer in [0, 4294967295]"


@pytest.fixture(scope="module")
def steps() -> list[pipeline.Step]:
    """The committed notebooks and what they declare (papermill's parser: once)."""
    return pipeline.discover_steps(NOTEBOOKS)


def _default(param: pipeline.DeclaredParam) -> Any:
    """The default as Python evaluates it (``float("inf")`` in a list included)."""
    try:
        return ast.literal_eval(param.default)
    except (ValueError, SyntaxError):
        return eval(param.default, {"__builtins__": {}}, {"float": float})  # noqa: S307


# --------------------------------------------------------------------------- refused

BAD = [
    # (override, the message after "--set <name>: ")
    ("n_folds=-1", "03_modeling's n_folds must be an integer >= 2, got -1"),
    ("n_folds=1", "03_modeling's n_folds must be an integer >= 2, got 1"),
    ("tune_folds=1", "03_modeling's tune_folds must be an integer >= 2, got 1"),
    ("k=0", "04_evaluation's k must be an integer >= 1, got 0"),
    ("holdout_fraction=1.5", "04_evaluation's holdout_fraction must be a number in (0, 1), got 1.5"),
    ("holdout_fraction=0", "04_evaluation's holdout_fraction must be a number in (0, 1), got 0"),
    ("holdout_fraction=1", "04_evaluation's holdout_fraction must be a number in (0, 1), got 1"),
    ("time_quantile=1.0", "04_evaluation's time_quantile must be a number in (0, 1), got 1.0"),
    ("blend_holdout=.nan", "03_modeling's blend_holdout must be a number in (0, 1), got nan"),
    ("ranking_holdout_fraction=-0.2",
     "03_modeling's ranking_holdout_fraction must be a number in (0, 1), got -0.2"),
    ("tuning_grid=huge", "03_modeling's tuning_grid must be one of 'small', 'full', got 'huge'"),
    ("source=kaggle", "01_cleaning's source must be one of 'auto', 'streaming', 'linked', "
                      "'movielens', got 'kaggle'"),
    ("period=H", "05_monitoring's period must be None or one of 'Y', 'Q', 'M', 'W', 'D', got 'H'"),
    ("period=q", "05_monitoring's period must be None or one of 'Y', 'Q', 'M', 'W', 'D', got 'q'"),
    ("rating_model=svd", "04_evaluation's rating_model must be one of 'fast', 'default', "
                         "'baseline', got 'svd'"),
    ("replay_model=surprise", "05_monitoring's replay_model must be one of 'baseline', "
                              "'surprise-baseline', 'svd', got 'surprise'"),
    ("n_jobs=0", "03_modeling's n_jobs must be an integer >= 1 or -1, got 0"),
    ("n_jobs=-2", "03_modeling's n_jobs must be an integer >= 1 or -1, got -2"),
    ("seed=-3", f"01_cleaning's seed must be {SEED_RULE}, got -3"),
    ("seed=4294967296", f"01_cleaning's seed must be {SEED_RULE}, got 4294967296"),
    ("top_n=0", "02_eda's top_n must be an integer >= 1, got 0"),
    ("max_points=-5", "02_eda's max_points must be an integer >= 1, got -5"),
    ("max_scatter_points=0", "02_eda's max_scatter_points must be an integer >= 1, got 0"),
    ("max_seasons=0", "02_eda's max_seasons must be an integer >= 1, got 0"),
    ("since_year=1990s", "02_eda's since_year must be None or an integer, got '1990s'"),
    ("analytics_year=2005.5", "02_eda's analytics_year must be None or an integer, got 2005.5"),
    ("slow_folds=0", "03_modeling's slow_folds must be None or an integer >= 1, got 0"),
    ("cv_max_ratings=0", "03_modeling's cv_max_ratings must be None or an integer >= 1, got 0"),
    ("cv_max_ratings=5e5",
     "03_modeling's cv_max_ratings must be None or an integer >= 1, got 500000.0"),
    ("precompute_depth=true",
     "03_modeling's precompute_depth must be None or an integer >= 1, got True"),
    ("precompute_depth=0", "03_modeling's precompute_depth must be None or an integer >= 1, got 0"),
    ("holdout_n=-1", "04_evaluation's holdout_n must be None or an integer >= 1, got -1"),
    ("blend_alpha=-1.0", "03_modeling's blend_alpha must be a finite number >= 0, got -1.0"),
    ("blend_alpha=.inf", "03_modeling's blend_alpha must be a finite number >= 0, got inf"),
    ("algorithms=[SVD, SVDPP]", "03_modeling's algorithms must be None or a non-empty list, each "
                                "item one of 'NormalPredictor', 'BaselineOnly', 'SVD', 'SVDpp', "
                                "'NMF', 'SlopeOne', 'KNNBaseline_user', 'KNNBaseline_item', "
                                "'CoClustering', got ['SVD', 'SVDPP'] (item 1: 'SVDPP')"),
    ("algorithms=[]", "03_modeling's algorithms must be None or a non-empty list"),
    ("algorithms=SVD", "03_modeling's algorithms must be None or a non-empty list"),
    ("tune_families=[NMF]", "03_modeling's tune_families must be a non-empty list, each item one "
                            "of 'BaselineOnly', 'SVD', 'SVDpp', 'KNNBaseline_item', "
                            "'KNNBaseline_user', got ['NMF'] (item 0: 'NMF')"),
    ("sample_user=abc", "04_evaluation's sample_user must be None or an integer, got 'abc'"),
    ("sample_item=123", "04_evaluation's sample_item must be None or a string, got 123"),
    ("psi_threshold=-0.1", "05_monitoring's psi_threshold must be None or a number >= 0 "
                           "(inf allowed), got -0.1"),
    ("error_increase=-1", "05_monitoring's error_increase must be None or a number >= 0"),
    ("new_user_threshold=high", "05_monitoring's new_user_threshold must be None or a number >= 0"),
    ("target_gain_share=1.5", "05_monitoring's target_gain_share must be a number in [0, 1], got 1.5"),
    ("psi_eps=0", "05_monitoring's psi_eps must be a number in (0, 1), got 0"),
    ("psi_grid=[]", "05_monitoring's psi_grid must be a non-empty list, each item a number >= 0 "
                    "(inf allowed), got []"),
    ("error_grid=[0.1, -0.1]", "05_monitoring's error_grid must be a non-empty list, each item a "
                               "number >= 0 (inf allowed), got [0.1, -0.1] (item 1: -0.1)"),
    ("new_user_grid=[.nan]", "05_monitoring's new_user_grid must be a non-empty list"),
    ("driver_memory=6 GB", "06_scale_out's driver_memory must be None or a Spark memory size such "
                           "as '512m' or '4g', got '6 GB'"),
    ("executor_memory=4", "06_scale_out's executor_memory must be None or a Spark memory size"),
    ("executor_cores=0", "06_scale_out's executor_cores must be None or an integer >= 1, got 0"),
    ("shuffle_partitions=-2", "06_scale_out's shuffle_partitions must be None or an integer >= 1"),
    ("als_ranks=[10, 0]", "06_scale_out's als_ranks must be a non-empty list, each item an integer "
                          ">= 1, got [10, 0] (item 1: 0)"),
    ("als_regs=[-0.1]", "06_scale_out's als_regs must be a non-empty list, each item a finite "
                        "number >= 0, got [-0.1] (item 0: -0.1)"),
    ("als_alphas=[.inf]", "06_scale_out's als_alphas must be a non-empty list, each item a finite "
                          "number >= 0"),
    ("als_max_iter=0", "06_scale_out's als_max_iter must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[o for o, _ in BAD])
def test_a_bad_value_is_refused_naming_parameter_rule_and_value(steps, override, message):
    parsed = pipeline.parse_override(override)
    with pytest.raises(ParameterError) as info:
        resolve_parameters(steps, NO_FILE, [parsed])
    assert str(info.value).startswith(f"--set {parsed[1]}: {message}")
    assert "\n" not in str(info.value)


def test_the_origin_is_the_targeted_override_or_the_params_file_section(steps, tmp_path):
    with pytest.raises(ParameterError, match=r"^--set 06_scale_out\.k: 06_scale_out's k must be "
                                             r"an integer >= 1, got 0$"):
        resolve_parameters(steps, NO_FILE, [("06_scale_out", "k", 0)])
    bad = tmp_path / "params.yaml"
    bad.write_text("common:\n  seed: 42\n03_modeling:\n  n_folds: 1\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=rf"^{bad} \[03_modeling\]: 03_modeling's n_folds "
                                             r"must be an integer >= 2, got 1$"):
        resolve_parameters(steps, load_params_file(bad))
    bad.write_text("common:\n  seed: -1\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=rf"^{bad} \[common\]: 01_cleaning's seed must be"):
        resolve_parameters(steps, load_params_file(bad))


def test_a_good_override_of_a_bad_file_value_does_not_save_it(steps, tmp_path):
    """Every layer is checked: the file's value is wrong even if --set replaces it (the
    file is what the next plain run reads)."""
    bad = tmp_path / "params.yaml"
    bad.write_text("03_modeling:\n  n_jobs: 0\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"\[03_modeling\]: 03_modeling's n_jobs"):
        resolve_parameters(steps, load_params_file(bad), [(None, "n_jobs", 2)])


# --------------------------------------------------------------------------- accepted

GOOD = [
    "n_folds=2", "tune_folds=2", "k=1", "top_n=1", "max_points=1", "n_jobs=1", "n_jobs=-1", "seed=0",
    "seed=4294967295", "holdout_fraction=0.001", "holdout_fraction=0.999", "time_quantile=0.5",
    "blend_holdout=1e-3", "psi_eps=1e-9", "tuning_grid=full", "source=movielens",
    "source=streaming", "period=null", "period=W", "period=D", "period=Y", "rating_model=default",
    "rating_model=baseline", "replay_model=surprise-baseline", "slow_folds=null", "slow_folds=1",
    "cv_max_ratings=1", "precompute_depth=null", "precompute_depth=1", "holdout_n=1",
    "since_year=1930", "since_year=null", "analytics_year=2005", "sample_user=0",
    "sample_item='123'", "algorithms=null", "algorithms=[CoClustering]",
    "tune_families=[SVDpp, KNNBaseline_user]", "blend_alpha=0", "psi_threshold=0",
    "psi_threshold=.inf", "error_increase=null", "new_user_threshold=1", "target_gain_share=0",
    "target_gain_share=1", "psi_grid=[0, .inf]", "error_grid=[0.5]", "driver_memory=512m",
    "executor_memory=4G", "driver_memory=2gb", "driver_memory=null", "executor_cores=1",
    "shuffle_partitions=1", "als_ranks=[1, 50]", "als_regs=[0]", "als_alphas=[0.0, 40]",
    "als_max_iter=1",
]


@pytest.mark.parametrize("override", GOOD)
def test_an_edge_value_the_code_accepts_passes(steps, override):
    notebook, name, value = pipeline.parse_override(override)
    effective = resolve_parameters(steps, NO_FILE, [(notebook, name, value)])
    received = [v[name] for v in effective.values() if name in v]
    assert received and all(v == value or v != v for v in received)  # nan != nan


def test_none_where_documented_passes_the_type_check_elsewhere_it_does_not(steps):
    """``slow_folds = 1  # ...; None: all``: None is documented although the default is an int."""
    effective = resolve_parameters(steps, NO_FILE, [(None, "slow_folds", None)])
    assert effective["03_modeling"]["slow_folds"] is None
    with pytest.raises(ParameterError, match="03_modeling declares n_folds as int .*got NoneType"):
        resolve_parameters(steps, NO_FILE, [(None, "n_folds", None)])


def test_a_notebook_specific_rule_wins_for_that_notebook(steps, monkeypatch):
    """A name means one thing everywhere unless ``"NN_notebook.name"`` says otherwise."""
    monkeypatch.setitem(RULES, "06_scale_out.k", Number(low=5, integer=True))
    assert rule_for("06_scale_out", "k") is RULES["06_scale_out.k"]
    assert rule_for("04_evaluation", "k") is RULES["k"]
    with pytest.raises(ParameterError, match="06_scale_out's k must be an integer >= 5, got 3"):
        resolve_parameters(steps, NO_FILE, [(None, "k", 3)])
    effective = resolve_parameters(steps, NO_FILE, [("04_evaluation", "k", 3)])
    assert effective["04_evaluation"]["k"] == 3


def test_rule_descriptions():
    assert Number(low=0, high=1, low_open=True).describe() == "a number in (0, 1]"
    assert Number(high=10, high_open=True, integer=True).describe() == "an integer < 10"
    assert Number(low=0.5, none=True).describe() == "None or a finite number >= 0.5"
    assert Text(pattern=r"\d+", what="digits").problem("12a") == ""
    assert Text(pattern=r"\d+", what="digits").problem("12") is None
    assert ListOf(item=OneOf(choices=("a",))).problem(["a", "b"]) == "item 1: 'b'"
    assert OneOf(choices=("a",)).problem(None) == ""
    assert OneOf(choices=("a",), none=True).problem(None) is None
    assert Number(low=0).problem(10**400) is None  # a huge int compares, no OverflowError
    assert parameter_rules.value_problem("04_evaluation", "no_rule_here", -1) is None


# --------------------------------------------------------------------------- no drift


def test_every_rule_names_a_parameter_a_notebook_declares(steps):
    declared = {step.name: set(step.declared) for step in steps}
    for key in RULES:
        notebook, _, name = key.rpartition(".")
        if notebook:
            assert name in declared.get(notebook, set()), f"{key}: {notebook} declares no {name}"
        else:
            assert any(name in names for names in declared.values()), f"no notebook declares {key}"


def test_every_notebook_default_passes_its_rule(steps):
    checked = 0
    for step in steps:
        for name, param in step.declared.items():
            problem = parameter_rules.value_problem(step.name, name, _default(param))
            assert problem is None, f"the notebook's own default: {problem}"
            checked += rule_for(step.name, name) is not None
    assert checked >= len(RULES)  # seed, k, ... are declared by several notebooks


@pytest.mark.parametrize("name", ["params.yaml", "params_large.yaml"])
def test_the_committed_params_files_pass(steps, name):
    params = load_params_file(NOTEBOOKS / name)
    effective = resolve_parameters(steps, params)
    # every value of the file went through a rule where one exists (none was skipped)
    for section, values in params.sections.items():
        for key, value in values.items():
            assert parameter_rules.value_problem(section, key, value) is None
            assert effective[section][key] == value


def test_choice_sets_are_the_codes():
    """Choices a module keeps are read from it; the others are checked against the code."""
    from recsys_utils.data.cleaning import SOURCES
    from recsys_utils.lifecycle import monitoring
    from recsys_utils.rating.comparison import ALGORITHMS
    from recsys_utils.rating.tuning import FAMILIES, GRIDS

    assert RULES["source"].names() == SOURCES
    assert RULES["algorithms"].item.names() == tuple(ALGORITHMS)
    assert RULES["tune_families"].item.names() == tuple(FAMILIES)
    # tuning_grid: a key of every family's grids
    assert all(set(grids) == set(RULES["tuning_grid"].names()) for grids in GRIDS.values())
    # replay_model: each builds a model; another name is refused by the step too
    for name in RULES["replay_model"].names():
        assert callable(monitoring._default_model_factory(name, 0, None))
    with pytest.raises(ValueError, match="unknown replay model"):
        monitoring._default_model_factory("svd++", 0, None)
    # period: the ladder a derived period comes from, each a calendar period of pandas
    periods = RULES["period"].names()
    assert set(monitoring.PERIOD_LADDER) <= set(periods)
    for alias in periods:
        assert monitoring.periods_per_year(alias) >= 1
        assert str(pd.Period("2005-03-07", freq=alias))


def test_the_step_functions_keep_their_own_checks():
    """The rules are a front door; notebook users calling the functions get the same limits."""
    from recsys_utils.ranking.evaluation import last_n_split, rating_params_for
    from recsys_utils.rating.comparison import kfold_indices

    with pytest.raises(ValueError, match="n_folds must be between 2"):
        kfold_indices(10, n_folds=1)
    frame = pd.DataFrame({"user": [1], "item": ["a"], "score": [4.0],
                          "timestamp": pd.to_datetime(["2005-01-01"])})
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        last_n_split(frame, fraction=1.5)
    with pytest.raises(ValueError, match="unknown rating model"):
        rating_params_for("svd")
