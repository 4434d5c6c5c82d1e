"""How a glued number becomes text in the book, "not measured" included.

A step glues ``None`` (a number its data could not give: a split with no test user, a
standard error of one user) as :data:`NOT_MEASURED`. The chapters reference numbers with
a format (``::eval_time_ndcg:.3f``), which myst-nb applies by converting the text to a
number first, so ``"n/a"`` would fail the build (warnings are errors) on exactly the data
where saying "n/a" is the honest answer. This module is also a Sphinx extension
(``_config.yml``: ``sphinx.extra_extensions``) that pastes ``n/a`` whatever the format.
"""

from __future__ import annotations

from ast import literal_eval
from typing import Any

__all__ = ["NOT_MEASURED", "format_like_myst", "setup"]

#: What a glued ``None`` reads as in the book.
NOT_MEASURED = "n/a"


def format_like_myst(text: str, fmt: str) -> str:
    """Format glued text/plain the way the book does (myst-nb's ``{glue:text}``, with
    :data:`NOT_MEASURED` passed through); raises if the value cannot take ``fmt``."""
    try:
        value = literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if value == NOT_MEASURED or not fmt:
        return str(value)
    kind = fmt[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    text = format(value, fmt)
    # A value that rounds to zero reads "0%", not Python's "-0%".
    if text.startswith("-") and not any(c in "123456789" for c in text):
        text = text[1:]
    return text


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point: myst-nb's glue roles format with :func:`format_like_myst`.

    myst-nb has no hook for this; its two glue modules import ``format_plain_text`` by
    name, so the name is replaced there (checked by tests/test_book.py, which fails if a
    myst-nb release moves it)."""
    from myst_nb.ext.glue import crossref, roles

    for module in (crossref, roles):
        module.format_plain_text = format_like_myst
    return {"parallel_read_safe": True, "parallel_write_safe": True}
