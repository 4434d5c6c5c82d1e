"""A short, stable fingerprint of a table's content.

The model registry records which data a model was trained on. The fingerprint
ignores row order, column order, the index and dtype width (``int32`` vs
``int64``, ``str`` vs ``object``), so the same ratings give the same
fingerprint however they were loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

__all__ = ["code_fingerprint", "data_fingerprint"]

_NULL = "\x00"


def _canonical(values: pd.Series) -> pd.Series:
    """Each value as canonical text: ints as ints, floats to 6 significant digits, ISO times."""
    if pd.api.types.is_datetime64_any_dtype(values):
        text = values.dt.strftime("%Y-%m-%dT%H:%M:%S")
    elif pd.api.types.is_bool_dtype(values):
        text = values.astype(object).map(lambda v: str(bool(v)), na_action="ignore")
    elif pd.api.types.is_numeric_dtype(values):
        # float32 3.5 and float64 3.5 must agree; 1 and 1.0 too.
        num = values.astype("float64")
        whole = num.notna() & (num % 1 == 0)
        text = pd.Series(_NULL, index=values.index, dtype=object)
        text[whole] = num[whole].astype("int64").astype(str).astype(object)
        frac = num.notna() & ~whole
        text[frac] = num[frac].map(lambda v: f"{v:.6g}").astype(object)
    else:
        text = values.astype(object).map(str, na_action="ignore")
    return text.astype(object).where(values.notna(), _NULL)


def data_fingerprint(df: pd.DataFrame) -> str:
    """SHA-256 of the table's canonical sorted content, as 16 hex characters.

    Canonical: columns sorted by name, each value as text (see ``_canonical``),
    rows sorted; the column names are part of the hash.
    """
    cols = sorted(map(str, df.columns))
    frame = df.copy()
    frame.columns = [str(c) for c in frame.columns]
    if len(frame):
        joined = _canonical(frame[cols[0]])
        for c in cols[1:]:
            joined = joined + "\x1f" + _canonical(frame[c])
        rows = sorted(joined)
    else:
        rows = []
    digest = hashlib.sha256()
    digest.update(("\x1f".join(cols) + "\x1e").encode("utf-8"))
    for row in rows:
        digest.update(row.encode("utf-8") + b"\x1e")
    return digest.hexdigest()[:16]


def code_fingerprint() -> str:
    """SHA-256 of the ``recsys_utils`` sources (file names + bytes), as 16 hex characters.

    The package version stays 0.1.0 while its code changes; this tells the pipeline
    and the registry that results computed with other code are not the same results.
    """
    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        name = file.relative_to(package).as_posix()
        h.update(name.encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()[:16]
