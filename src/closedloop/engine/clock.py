"""Time for the engine: the system clock, and the rule that instants carry a zone."""

from __future__ import annotations

from datetime import UTC, datetime

from closedloop.errors import NaiveDatetime


class SystemClock:
    """The wall clock, in UTC. The engine's default; tests inject a ManualClock."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)


def aware(value: datetime, what: str = "datetime") -> datetime:
    """``value`` itself, if it is a timezone-aware datetime: the one check every part
    of closedloop makes of the instants it is given.

    Raises:
        NaiveDatetime: ``value`` is not a datetime, or has no time zone; ``what``
            names it in the message.
    """
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetime(what)
    return value


def utc(value: datetime, what: str = "datetime") -> datetime:
    """``value`` converted to UTC.

    Raises:
        NaiveDatetime: ``value`` is not a datetime, or has no time zone.
    """
    if isinstance(value, datetime) and value.tzinfo is UTC:
        return value  # the common case: instants the engine made or read back
    return aware(value, what).astimezone(UTC)
