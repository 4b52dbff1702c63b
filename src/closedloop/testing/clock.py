"""``ManualClock``: time that moves only when a test says so."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from closedloop.engine.clock import utc
from closedloop.errors import ValidationError


class ManualClock:
    """A clock for tests: starts at ``start`` and moves by :meth:`advance` or :meth:`set`.

    Args:
        start: The first instant; timezone-aware. Defaults to 2026-01-05 09:00 UTC.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (
            utc(start, "start") if start is not None else datetime(2026, 1, 5, 9, tzinfo=UTC)
        )
        self._lock = threading.Lock()
        self._after_move: list[Callable[[], object]] = []

    def after_each_move(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` after every :meth:`advance` and :meth:`set`.

        ``clock.after_each_move(engine.tick)`` makes due timers fire as time moves, as
        a ticker would in production.
        """
        self._after_move.append(callback)

    def _moved(self, now: datetime) -> datetime:
        for callback in self._after_move:
            callback()
        return now

    def now(self) -> datetime:
        """The current (manual) instant."""
        with self._lock:
            return self._now

    def advance(
        self,
        delta: timedelta | None = None,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> datetime:
        """Move forward by ``delta`` and/or the keyword amounts; returns the new instant.

        Raises:
            ValidationError: ``delta`` is not a ``timedelta``, an amount is not a
                number, or the move would go backwards.
        """
        problems = []
        if delta is not None and not isinstance(delta, timedelta):
            problems.append(
                (
                    "delta",
                    f"must be a timedelta, such as timedelta(minutes={delta!r}), or use the "
                    f"keywords days=, hours=, minutes=, seconds=; not {type(delta).__name__}",
                )
            )
        amounts = {"days": days, "hours": hours, "minutes": minutes, "seconds": seconds}
        problems += [
            (name, f"must be a number, not {type(value).__name__}")
            for name, value in amounts.items()
            if isinstance(value, bool) or not isinstance(value, int | float)
        ]
        if problems:
            raise ValidationError(problems, subject="clock")
        step = (delta or timedelta()) + timedelta(
            days=days, hours=hours, minutes=minutes, seconds=seconds
        )
        if step < timedelta(0):
            raise ValidationError([("delta", "a clock only moves forward")], subject="clock")
        with self._lock:
            self._now += step
            now = self._now
        return self._moved(now)

    def set(self, instant: datetime) -> datetime:
        """Jump to ``instant`` (timezone-aware, not before now); returns it.

        Raises:
            NaiveDatetime: ``instant`` has no time zone.
            ValidationError: ``instant`` is before the current instant.
        """
        target = utc(instant, "instant")
        with self._lock:
            if target < self._now:
                raise ValidationError([("instant", "a clock only moves forward")], subject="clock")
            self._now = target
        return self._moved(target)
