"""What the benchmark scripts share.

Imported as ``_common``: ``python benchmarks/<script>.py`` puts ``benchmarks/`` on
``sys.path``.
"""

from __future__ import annotations

import pandas as pd

from recsys_utils.data.cleaning import embedded_movielens, load_processed
from recsys_utils.errors import DataError


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
