"""The Engine's own arguments, checked before any store is touched.

A case id, a trigger name, an actor, a version, a batch size: each is checked for its
type and form at the public API, and a wrong one is a
:class:`~closedloop.errors.ValidationError` naming the argument, so no ``TypeError``,
``AttributeError``, ``OverflowError`` or ``UnicodeEncodeError`` from deeper down (a
dictionary, a database driver) reaches the host, and nothing is written. The values
themselves stay out of the messages: a badly chosen one may be personal data. A trigger
name is the exception: one the workflow does not declare is named back with the
triggers it does declare, so that a misspelling shows.

A stored row that does not read back as what it holds is a
:class:`~closedloop.errors.DamagedRecord` naming it (:func:`reading`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING

from pydantic import ValidationError as PydanticValidationError

from closedloop.engine.model import Actor, printable
from closedloop.errors import ClosedLoopError, DamagedRecord, ValidationError

if TYPE_CHECKING:
    from closedloop.engine.definition import TransitionSpec, Workflow

MAX_ID = 1000
"""The longest case or message id the engine looks up, in characters."""


def _refuse(name: str, message: str) -> ValidationError:
    return ValidationError([(name, message)], subject="argument")


def identifier(value: object, name: str) -> str:
    """``value`` as an id to look up: 1 to 1000 printable characters of valid Unicode.

    Raises:
        ValidationError: anything else, naming ``name``.
    """
    if not isinstance(value, str):
        raise _refuse(name, f"must be text, got {type(value).__name__}")
    if not printable(value, MAX_ID):
        raise _refuse(name, f"must be 1 to {MAX_ID} printable characters of valid Unicode")
    return value


def trigger(value: object, workflow: Workflow) -> TransitionSpec:
    """The transition of ``workflow`` that ``value`` names.

    A name the workflow does not declare is a wrong argument, not a command the case's
    state refuses: whichever state the case is in, no such trigger fires.

    Raises:
        ValidationError: not text, not printable valid Unicode, or not a trigger the
            workflow declares; the error lists the triggers it does declare.
    """
    name = identifier(value, "name")
    try:
        return workflow.transition(name)
    except KeyError:
        declared = ", ".join(sorted(t.name for t in workflow.transitions)) or "none"
        raise _refuse(
            "name", f"{name!r} is not a trigger of workflow {workflow.name!r}; triggers: {declared}"
        ) from None


def actor(value: object, name: str) -> Actor:
    """``value``, which must be an :class:`~closedloop.engine.model.Actor`.

    Raises:
        ValidationError: anything else, naming ``name``.
    """
    if not isinstance(value, Actor):
        raise _refuse(name, f"must be an Actor, got {type(value).__name__}")
    return value


def optional_actor(value: object, name: str) -> Actor | None:
    """``value`` as an actor, or ``None``."""
    return None if value is None else actor(value, name)


def version(value: object, name: str) -> int | None:
    """``value`` as a case version to expect (a positive whole number), or ``None``.

    Raises:
        ValidationError: a boolean, a non-integer, or a number below 1.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _refuse(name, "must be a whole number of at least 1 (a case's version)")
    return value


MAX_COUNT = 1_000_000
"""The largest batch or page size the engine accepts (a database's integers are 64-bit;
no store hands out more rows in one claim usefully)."""


def count(value: object, name: str) -> int:
    """``value`` as a count of 1 to :data:`MAX_COUNT` (a batch size, a page size).

    Raises:
        ValidationError: a boolean, a non-integer, or a number out of that range.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_COUNT:
        raise _refuse(name, f"must be a whole number from 1 to {MAX_COUNT:,}")
    return value


def callback(value: object, name: str) -> Callable[[], bool] | None:
    """``value`` as a function to call, or ``None``.

    Raises:
        ValidationError: neither ``None`` nor callable.
    """
    if value is not None and not callable(value):
        raise _refuse(name, f"must be a function or None, got {type(value).__name__}")
    return value


def reading(record: str, case_id: str | None) -> AbstractContextManager[None]:
    """Turn a stored row that does not read back (bad JSON, a field of the wrong type)
    into :class:`~closedloop.errors.DamagedRecord` naming ``record``.

    Errors of closedloop's own tree pass unchanged; so does anything that is not a
    failure to decode (a bug is not reported as damage).
    """
    return _Reading(record, case_id)


class _Reading(AbstractContextManager[None]):
    # A class rather than a generator: every command reads its case inside one.
    __slots__ = ("_case_id", "_record")

    def __init__(self, record: str, case_id: str | None) -> None:
        self._record = record
        self._case_id = case_id

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, ClosedLoopError):
            return
        if isinstance(exc, PydanticValidationError | ValueError | TypeError | KeyError):
            raise DamagedRecord(self._record, _one_line(exc), case_id=self._case_id) from exc


def _one_line(exc: BaseException) -> str:
    # The field and what is wrong with it, never the stored value (it may be personal).
    if isinstance(exc, PydanticValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where or exc.title}: {first['msg']}{more}"
    return f"{type(exc).__name__} while decoding it"
