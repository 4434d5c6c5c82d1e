"""User-facing exceptions shared by the whole project.

Why a module of its own: notebooks, CLIs and the API all need to tell a
*user* mistake (missing file, unknown platform) from a bug. CLIs catch
``DataError`` and print ``error: ...``; the API maps ``UnknownFilterError``
to 404/422 and ``UnknownItemError`` to 404.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["DataError", "UnknownFilterError", "UnknownItemError"]


class DataError(Exception):
    """Input data is missing or malformed; the message names the file and what was expected."""


class UnknownFilterError(ValueError):
    """A filter value (platform, kind, rating, ...) is not one of the valid values.

    Attributes:
        field: name of the filter (``"platform"``).
        value: the value given.
        valid: the sorted valid values.
    """

    def __init__(self, field: str, value: object, valid: Iterable[object]) -> None:
        self.field = field
        self.value = value
        self.valid: list[str] = sorted({str(v) for v in valid})
        listed = ", ".join(repr(v) for v in self.valid) or "(none)"
        super().__init__(f"unknown {field} {value!r}; valid values: {listed}")


class UnknownItemError(KeyError):
    """An item id is not known to the model or table.

    ``KeyError.__str__`` quotes its argument; we override it so the message reads well.
    """

    def __init__(self, item_id: object, message: str | None = None) -> None:
        self.item_id = item_id
        self.message = message or f"unknown item {item_id!r}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message
