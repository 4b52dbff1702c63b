"""Rows that do not read back: a :class:`~closedloop.errors.DamagedRecord` naming the row."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal

from pydantic import ValidationError as PydanticValidationError

from closedloop.errors import DamagedRecord


def damaged_row(
    row: Mapping[Any, Any], kind: Literal["case", "event"]
) -> AbstractContextManager[None]:
    """Turn a failure to build a value from ``row`` into a ``DamagedRecord`` naming it.

    A case row is named by the id in its body, an event row by its case and sequence
    number. The message carries the field and what is wrong, never the stored value.
    """
    return _Damaged(row, kind)


class _Damaged(AbstractContextManager[None]):
    # A class rather than a generator: every case and event read runs inside one.
    __slots__ = ("_kind", "_row")

    def __init__(self, row: Mapping[Any, Any], kind: Literal["case", "event"]) -> None:
        self._row = row
        self._kind = kind

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not isinstance(exc, PydanticValidationError | ValueError | TypeError):
            return
        row = self._row
        case_id = row.get("id") if self._kind == "case" else row.get("case_id")
        shown = case_id if isinstance(case_id, str) else None
        if self._kind == "case":
            record = f"case {shown!r}" if shown else "case row"
        else:
            record = f"audit event {row.get('seq')!r} of case {shown!r}"
        raise DamagedRecord(record, _what(exc), case_id=shown) from None


def _what(exc: Exception) -> str:
    if isinstance(exc, PydanticValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where or exc.title}: {first['msg']}{more}"
    return type(exc).__name__
