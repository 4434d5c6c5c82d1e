"""What the benchmark scripts share.

Imported as ``_common``: ``python benchmarks/<script>.py`` puts ``benchmarks/`` on
``sys.path``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from recsys_utils.data.cleaning import embedded_movielens, load_processed
from recsys_utils.errors import DataError
from recsys_utils.lifecycle.registry import load_evaluated
from recsys_utils.ranking.report import registered_configuration


def load_tables() -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Model table, titles and where they come from: the processed tables, else the
    embedded MovieLens cleaned in memory by the cleaning step's own rules.

    Never raises ``DataError``: missing or invalid processed tables mean the fallback.
    """
    try:
        data = load_processed()
        return data.model, data.titles, "data/processed"
    except DataError:
        titles, model = embedded_movielens()
        return model, titles, "embedded MovieLens (no processed tables)"


def served_ranking() -> tuple[pd.DataFrame, pd.DataFrame, str, dict[str, Any], str]:
    """``load_tables``' tables and source, the ranking parameters served on them and where
    those come from: the registered champion's (what 04 evaluates), else chosen afresh on
    the tables (``report.registered_configuration``)."""
    model_df, titles, source = load_tables()
    try:
        champion = load_evaluated()
    except DataError:
        champion = None
    served, _, where = registered_configuration(champion, model_df, titles)
    return model_df, titles, source, served, where
