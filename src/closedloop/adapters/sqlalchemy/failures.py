"""Driver errors in, closedloop errors out; and the bounded retry of transient conflicts.

No SQLAlchemy or driver exception leaves the SQL store: each is classified here and
raised again as a :class:`~closedloop.errors.StoreError` subclass (or, where the
operation knows better, as ``ConcurrentModification``, ``LeaseLost`` ...), chained
with ``raise ... from exc`` so the original stays visible in tracebacks.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TypeVar

from sqlalchemy import exc as sa_exc

from closedloop.errors import ClosedLoopError, StoreError, StoreUnavailable

T = TypeVar("T")

ErrorFactory = Callable[[], ClosedLoopError]


class Failure(enum.Enum):
    """What kind of failure a driver error is, independent of the backend."""

    CONFLICT = "conflict"
    """A serialization failure or deadlock: the same work may succeed if tried again."""
    DUPLICATE = "duplicate"
    """A primary key or unique constraint refused a row."""
    MISSING_PARENT = "missing parent"
    """A foreign key refused a row: the case it belongs to does not exist."""
    UNAVAILABLE = "unavailable"
    """The database cannot be reached, or refused to serve in time."""
    OTHER = "other"


_POSTGRES_STATES = {
    "40001": Failure.CONFLICT,  # serialization_failure
    "40P01": Failure.CONFLICT,  # deadlock_detected
    "23505": Failure.DUPLICATE,  # unique_violation
    "23503": Failure.MISSING_PARENT,  # foreign_key_violation
    "53300": Failure.UNAVAILABLE,  # too_many_connections
}
_SQLITE_PREFIXES = (
    # Busy only after the busy timeout ran out: the writer ahead held on too long.
    ("SQLITE_BUSY", Failure.UNAVAILABLE),
    ("SQLITE_LOCKED", Failure.UNAVAILABLE),
    ("SQLITE_CONSTRAINT_PRIMARYKEY", Failure.DUPLICATE),
    ("SQLITE_CONSTRAINT_UNIQUE", Failure.DUPLICATE),
    ("SQLITE_CONSTRAINT_FOREIGNKEY", Failure.MISSING_PARENT),
    ("SQLITE_CANTOPEN", Failure.UNAVAILABLE),
    ("SQLITE_NOTADB", Failure.UNAVAILABLE),
    ("SQLITE_IOERR", Failure.UNAVAILABLE),
)


def classify(exc: BaseException) -> Failure:
    """The kind of ``exc``, a SQLAlchemy error wrapping a driver error."""
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return Failure.UNAVAILABLE  # the pool could not hand out a working connection
    if not isinstance(exc, sa_exc.DBAPIError):
        return Failure.OTHER
    if exc.connection_invalidated:
        return Failure.UNAVAILABLE
    orig = exc.orig
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        # Class 08 is "connection exception", 57P0x the server shutting down.
        if state.startswith(("08", "57P")):
            return Failure.UNAVAILABLE
        return _POSTGRES_STATES.get(state, Failure.OTHER)
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        kinds = (kind for prefix, kind in _SQLITE_PREFIXES if name.startswith(prefix))
        return next(kinds, Failure.OTHER)
    # A driver error without a code, for instance psycopg failing to connect.
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return Failure.UNAVAILABLE
    return Failure.OTHER


def is_busy(exc: sa_exc.SQLAlchemyError) -> bool:
    """Whether SQLite refused a lock (``SQLITE_BUSY`` and its variants)."""
    name = getattr(getattr(exc, "orig", None), "sqlite_errorname", None)
    return isinstance(name, str) and name.startswith("SQLITE_BUSY")


def translate(
    exc: sa_exc.SQLAlchemyError,
    action: str,
    *,
    conflict: ErrorFactory | None = None,
    duplicate: ErrorFactory | None = None,
    missing: ErrorFactory | None = None,
) -> ClosedLoopError:
    """The closedloop error to raise for ``exc`` met while doing ``action``.

    ``conflict``, ``duplicate`` and ``missing`` make the error for those kinds of
    failure when the operation can name it better than a generic ``StoreError``.
    """
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, ClosedLoopError):
        # Our own check failed while binding a value (a naive instant, for example).
        return exc.orig
    kind = classify(exc)
    factory = {Failure.CONFLICT: conflict, Failure.DUPLICATE: duplicate}.get(kind)
    if kind is Failure.MISSING_PARENT:
        factory = missing
    if factory is not None:
        return factory()
    reason = getattr(exc, "orig", None) or exc
    detail = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    if kind is Failure.UNAVAILABLE:
        return StoreUnavailable(f"the database is unavailable while trying to {action}: {detail}")
    return StoreError(f"the database failed to {action}: {detail}")


def translated(
    action: str,
    *,
    conflict: ErrorFactory | None = None,
    duplicate: ErrorFactory | None = None,
    missing: ErrorFactory | None = None,
) -> AbstractContextManager[None]:
    """Raise driver errors of the block as closedloop errors (see :func:`translate`)."""
    return _Translated(action, conflict, duplicate, missing)


class _Translated(AbstractContextManager[None]):
    # A class rather than a generator: every statement of a command runs inside one.
    __slots__ = ("_action", "_conflict", "_duplicate", "_missing")

    def __init__(
        self,
        action: str,
        conflict: ErrorFactory | None,
        duplicate: ErrorFactory | None,
        missing: ErrorFactory | None,
    ) -> None:
        self._action = action
        self._conflict = conflict
        self._duplicate = duplicate
        self._missing = missing

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, sa_exc.SQLAlchemyError):
            raise translate(
                exc,
                self._action,
                conflict=self._conflict,
                duplicate=self._duplicate,
                missing=self._missing,
            ) from exc


def retrying(work: Callable[[], T], *, attempts: int) -> T:
    """Run ``work``, again after a serialization failure or deadlock, ``attempts`` times at most.

    Only for work that is a whole transaction of its own (a claim, a finish): the
    database rolled it back, so running it again is safe. The last failure is raised.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except sa_exc.SQLAlchemyError as exc:
            if attempt == attempts or classify(exc) is not Failure.CONFLICT:
                raise
        # Jittered backoff so the workers that collided do not collide again.
        time.sleep(random.uniform(0, 0.002 * 2**attempt))
    raise AssertionError("unreachable: the last attempt returns or raises")
