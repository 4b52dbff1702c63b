"""Time for the engine: the system clock, and the rule that instants carry a zone."""

from __future__ import annotations

from datetime import UTC, datetime

from closedloop.errors import NaiveDatetime


class SystemClock:
    """The wall clock, in UTC. The engine's default; tests inject a ManualClock."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)


def utc(value: datetime, what: str = "datetime") -> datetime:
    """``value`` converted to UTC.

    Raises:
        NaiveDatetime: ``value`` has no time zone.
    """
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetime(what)
    return value.astimezone(UTC)
