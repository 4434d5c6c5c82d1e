"""The values the notebooks' parameters accept: one table of rules, checked before anything runs.

Why: ``recsys-pipeline`` checks each value's *type* against the notebook's declaration, but
``--set n_folds=-1`` has the right type and used to fail only when ``03_modeling`` reached
``run_modeling``, after the earlier notebooks had run. ``resolve_parameters`` checks every
value it passes on against :data:`RULES`, so a bad value is a one-line usage error (exit 2)
before the first notebook starts.

The rules hold what is knowable without data and what the code the notebooks call accepts
(numpy's seed range, ``n_folds >= 2``, fractions in (0, 1), the choices of ``source``,
``tuning_grid``, ``rating_model``, ...). Limits that depend on the data (``n_folds`` at most
the number of ratings, a start period inside the timeline, a user id the data knows) stay
with the step functions, which keep their own checks for notebook users calling them
directly. Structured values (``blend_components``, ``ranking_grid``, ``ranking_params``,
``retune_grid``) are checked by the functions they configure.

A rule is keyed by parameter name: a name means the same in every notebook that declares
it. Should one notebook's parameter differ, its rule is keyed ``"NN_notebook.name"`` and
wins for that notebook. A test keeps every key naming a parameter some notebook declares,
and every notebook default and preset (``params.yaml``, ``params_large.yaml``) passing.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RULES", "ListOf", "Number", "OneOf", "Rule", "Text", "rule_for", "value_problem"]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What a parameter accepts; ``none``: ``None`` too (the notebook documents what it means)."""

    none: bool = False

    def describe(self) -> str:
        """The rule in words, for ``... must be <describe()>, got ...``."""
        return ("None or " if self.none else "") + self._describe()

    def problem(self, value: Any) -> str | None:
        """``None`` when ``value`` is accepted, else what is wrong (``""``: just the rule)."""
        if value is None:
            return None if self.none else ""
        return self._problem(value)

    def _describe(self) -> str:
        raise NotImplementedError(type(self).__name__)

    def _problem(self, value: Any) -> str | None:
        raise NotImplementedError(type(self).__name__)


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True, kw_only=True)
class Number(Rule):
    """A number (``integer``: an int, never a bool) from ``low`` to ``high``; an ``*_open``
    bound is excluded. NaN is always refused, an infinity unless ``infinite`` (a swept
    threshold of ``inf`` switches its signal off). ``also``: values accepted outside the
    bounds (``n_jobs=-1``, joblib's "every core")."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    infinite: bool = False
    also: tuple[int, ...] = ()

    def _describe(self) -> str:
        finite = (not self.integer and not self.infinite
                  and (self.low is None or self.high is None))
        kind = "an integer" if self.integer else ("a finite number" if finite else "a number")
        low, high = self.low, self.high
        if low is not None and high is not None:
            return (f"{kind} in {'(' if self.low_open else '['}{_num(low)}, {_num(high)}"
                    f"{')' if self.high_open else ']'}")
        if low is not None:
            kind += f" {'>' if self.low_open else '>='} {_num(low)}"
        if high is not None:
            kind += f" {'<' if self.high_open else '<='} {_num(high)}"
        if self.infinite:
            kind += " (inf allowed)"
        return kind + "".join(f" or {_num(x)}" for x in self.also)

    def _problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ""
        if self.integer and not isinstance(value, int):
            return ""
        if value in self.also:
            return None
        if isinstance(value, float) and (math.isnan(value)
                                         or (math.isinf(value) and not self.infinite)):
            return ""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return ""
        if self.high is not None and (value >= self.high if self.high_open
                                      else value > self.high):
            return ""
        return None


@dataclass(frozen=True, kw_only=True)
class OneOf(Rule):
    """One of ``choices``: the names themselves, or a function returning them (the names the
    code keeps, e.g. ``comparison.ALGORITHMS``, imported only when a value is checked, so
    ``recsys-pipeline --help`` does not import surprise)."""

    choices: Sequence[str] | Callable[[], Sequence[str]]

    def names(self) -> tuple[str, ...]:
        found = self.choices() if callable(self.choices) else self.choices
        return tuple(str(name) for name in found)

    def _describe(self) -> str:
        return "one of " + ", ".join(repr(name) for name in self.names())

    def _problem(self, value: Any) -> str | None:
        return None if isinstance(value, str) and value in self.names() else ""


@dataclass(frozen=True, kw_only=True)
class Text(Rule):
    """A string; with ``pattern``, one that matches it in full (``what`` says which)."""

    pattern: str | None = None
    what: str = "a string"

    def _describe(self) -> str:
        return self.what

    def _problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return ""
        if self.pattern and not re.fullmatch(self.pattern, value, re.IGNORECASE):
            return ""
        return None


@dataclass(frozen=True, kw_only=True)
class ListOf(Rule):
    """A non-empty list whose every item passes ``item``."""

    item: Rule

    def _describe(self) -> str:
        return f"a non-empty list, each item {self.item.describe()}"

    def _problem(self, value: Any) -> str | None:
        if not isinstance(value, list | tuple) or not value:
            return ""
        for i, entry in enumerate(value):
            if self.item.problem(entry) is not None:
                return f"item {i}: {_shown(entry)}"
        return None


def _from(module: str, attribute: str) -> Callable[[], tuple[str, ...]]:
    """The names a module keeps (a tuple, or a dict's keys), imported when first needed."""
    def names() -> tuple[str, ...]:
        return tuple(getattr(importlib.import_module(module), attribute))
    return names


_COUNT = Number(low=1, integer=True)  # k, top_n, iterations, points drawn ...
_COUNT_OR_NONE = Number(low=1, integer=True, none=True)
_FOLDS = Number(low=2, integer=True)  # the upper bound, the number of ratings, is the data's
_FRACTION = Number(low=0, high=1, low_open=True, high_open=True)
_YEAR_OR_NONE = Number(integer=True, none=True)
_THRESHOLD_OR_NONE = Number(low=0, infinite=True, none=True)
_SWEEP = ListOf(item=Number(low=0, infinite=True))
#: Spark's size strings (``JavaUtils.byteStringAs``): digits and an optional unit.
_SPARK_SIZE = Text(pattern=r"\d+(b|[kmgtp]b?)?", none=True,
                   what="a Spark memory size such as '512m' or '4g'")

#: Parameter name (or ``"NN_notebook.name"``) -> the values it accepts.
RULES: dict[str, Rule] = {
    # every notebook: numpy's RandomState (pandas' samples, surprise's folds) takes [0, 2**32)
    "seed": Number(low=0, high=2**32 - 1, integer=True),
    # 01_cleaning
    "source": OneOf(choices=_from("recsys_utils.data.cleaning", "SOURCES")),
    # 02_eda
    "top_n": _COUNT,
    "max_points": _COUNT,
    "max_scatter_points": _COUNT,
    "max_seasons": _COUNT,
    "since_year": _YEAR_OR_NONE,
    "analytics_year": _YEAR_OR_NONE,
    # 03_modeling
    "n_folds": _FOLDS,
    "algorithms": ListOf(none=True,
                         item=OneOf(choices=_from("recsys_utils.rating.comparison", "ALGORITHMS"))),
    "slow_folds": _COUNT_OR_NONE,
    "cv_max_ratings": _COUNT_OR_NONE,
    "tune_families": ListOf(item=OneOf(choices=_from("recsys_utils.rating.tuning", "FAMILIES"))),
    "tuning_grid": OneOf(choices=("small", "full")),  # the keys of every tuning.GRIDS family
    "tune_folds": _FOLDS,
    "blend_holdout": _FRACTION,
    "blend_alpha": Number(low=0),  # a ridge penalty
    "ranking_holdout_fraction": _FRACTION,
    "precompute_depth": _COUNT_OR_NONE,
    "n_jobs": Number(low=1, integer=True, also=(-1,)),  # processes; -1: every core (joblib)
    # 04_evaluation (k, holdout_fraction and rating_model also 06_scale_out)
    "k": _COUNT,
    "time_quantile": _FRACTION,
    "holdout_fraction": _FRACTION,
    "holdout_n": _COUNT_OR_NONE,
    "rating_model": OneOf(choices=_from("recsys_utils.ranking.evaluation", "RATING_MODEL_CHOICES")),
    "sample_user": Number(integer=True, none=True),  # user ids are integers
    "sample_item": Text(none=True),  # item ids are strings
    # 05_monitoring
    "period": OneOf(choices=("Y", "Q", "M", "W", "D"), none=True),
    "replay_model": OneOf(choices=("baseline", "surprise-baseline", "svd")),
    "psi_threshold": _THRESHOLD_OR_NONE,
    "error_increase": _THRESHOLD_OR_NONE,
    "new_user_threshold": _THRESHOLD_OR_NONE,
    "target_gain_share": Number(low=0, high=1),
    "psi_eps": _FRACTION,
    "psi_grid": _SWEEP,
    "error_grid": _SWEEP,
    "new_user_grid": _SWEEP,
    # 06_scale_out (Spark's ALS: rank >= 1, regParam >= 0, alpha >= 0)
    "executor_memory": _SPARK_SIZE,
    "driver_memory": _SPARK_SIZE,
    "executor_cores": _COUNT_OR_NONE,
    "shuffle_partitions": _COUNT_OR_NONE,
    "als_ranks": ListOf(item=_COUNT),
    "als_regs": ListOf(item=Number(low=0)),
    "als_alphas": ListOf(item=Number(low=0)),
    "als_max_iter": _COUNT,
    "als_blocks": _COUNT_OR_NONE,
}


def rule_for(notebook: str, name: str) -> Rule | None:
    """The rule of ``notebook``'s parameter ``name`` (its own, else the name's), or None."""
    return RULES.get(f"{notebook}.{name}", RULES.get(name))


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def value_problem(notebook: str, name: str, value: Any) -> str | None:
    """``"<notebook>'s <name> must be <rule>, got <value>"``, or None when the value passes
    (or no rule covers the parameter)."""
    rule = rule_for(notebook, name)
    problem = rule.problem(value) if rule is not None else None
    if problem is None:
        return None
    detail = f" ({problem})" if problem else ""
    return f"{notebook}'s {name} must be {rule.describe()}, got {_shown(value)}{detail}"
