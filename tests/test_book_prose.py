"""The book's prose states no data-dependent count by hand: such numbers are glued from the
executed notebooks (``{glue:text}``), so the text cannot disagree with the run."""

from __future__ import annotations

import re

import pytest

from recsys_utils.paths import PROJECT_ROOT

BOOK = PROJECT_ROOT / "book"
#: Chapters of dated benchmark measurements (machine, date and command given with each figure).
MEASURED = {"serving.md", "scaling.md"}
_FENCE = re.compile(r"```.*?```", re.S)
_GLUE = re.compile(r"\{glue(?::\w+)?\}`[^`]+`")
_CODE = re.compile(r"`[^`]*`")
#: A count written with thousands separators (100,004): what a hand-typed data count looks like.
_COUNT = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?!\w)")


def hand_typed_counts(text: str) -> list[str]:
    """Counts with thousands separators outside glue roles, code and code blocks."""
    prose = _CODE.sub("", _GLUE.sub("", _FENCE.sub("", text)))
    return _COUNT.findall(prose)


def test_the_detector_sees_a_hand_typed_count() -> None:
    assert hand_typed_counts("kept 100,004 ratings by 671 users") == ["100,004"]
    assert hand_typed_counts("kept {glue:text}`/nb.ipynb::n:,d` ratings, `9,066` in code") == []


@pytest.mark.parametrize("chapter", sorted(p.name for p in BOOK.glob("*.md")
                                           if p.name not in MEASURED))
def test_chapter_has_no_hand_typed_counts(chapter: str) -> None:
    assert hand_typed_counts((BOOK / chapter).read_text(encoding="utf-8")) == []
