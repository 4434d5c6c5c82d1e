"""One reading of a requirement string for the tests that compare dependency lists."""

from __future__ import annotations

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def requirement_key(text: str) -> tuple[str, str]:
    """``"scikit_surprise >=1.1.4, <1.2"`` -> ``("scikit-surprise", "<1.2,>=1.1.4")``: the
    canonical name and the range in packaging's order, so that the same requirement written
    two ways compares equal."""
    requirement = Requirement(text)
    return canonicalize_name(requirement.name), str(requirement.specifier)
