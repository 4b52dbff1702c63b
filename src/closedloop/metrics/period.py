"""The reporting period: a half-open span of time, and the zone its days are counted in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from difflib import get_close_matches
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import ConfigDict, field_validator, model_validator

from closedloop.engine.model import Instant
from closedloop.errors import ValidationError
from closedloop.metrics.checked import Checked


class Period(Checked):
    """The span ``[start, end)`` that a report covers.

    An instant equal to ``end`` belongs to the next period, so consecutive weeks
    neither overlap nor leave a gap.

    Attributes:
        start: The first instant of the period (timezone-aware; kept in UTC).
        end: The first instant after the period.
        timezone: The IANA zone whose midnights cut the period into days, for the
            per-day series; ``"UTC"`` by default.

    Raises:
        ValidationError: an instant is naive or missing, ``end`` is not after
            ``start``, or the zone is unknown.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: Instant
    end: Instant
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValidationError(
                [
                    (
                        "end",
                        f"{self.end} is not after start {self.start}: "
                        "a period must end after it starts",
                    )
                ],
                subject="Period",
            )
        return self

    @classmethod
    def days(cls, first: date, last: date, *, timezone: str = "UTC") -> Period:
        """The whole days ``first`` to ``last`` (both included), in ``timezone``.

        Raises:
            ValidationError: the zone is unknown, or ``last`` is before ``first`` (the
                range is reversed).

        >>> Period.days(date(2026, 3, 2), date(2026, 3, 8), timezone="Asia/Shanghai").start
        datetime.datetime(2026, 3, 1, 16, 0, tzinfo=datetime.timezone.utc)
        """
        zone = _zone(timezone)
        if last < first:
            raise ValidationError(
                [
                    (
                        "last",
                        f"{last} is before first {first}: the range is reversed; "
                        "write the earlier day first",
                    )
                ],
                subject="Period",
            )
        start = datetime.combine(first, time(0), tzinfo=zone)
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone)
        return cls(start=start, end=end, timezone=timezone)

    @classmethod
    def week(cls, first: date, *, timezone: str = "UTC") -> Period:
        """The seven days from ``first`` (usually a Monday), in ``timezone``.

        Raises:
            ValidationError: the zone is unknown.
        """
        return cls.days(first, first + timedelta(days=6), timezone=timezone)

    def __contains__(self, at: object) -> bool:
        """Whether the instant ``at`` lies in ``[start, end)``."""
        return isinstance(at, datetime) and self.start <= at < self.end

    @property
    def label(self) -> str:
        """The period as people say it, in its zone: ``2026-03-01 to 2026-03-31
        (Asia/Shanghai)`` for whole days (both included), local times otherwise."""
        zone = ZoneInfo(self.timezone)
        start, end = self.start.astimezone(zone), self.end.astimezone(zone)
        if start.time() == time(0) and end.time() == time(0):
            last = end.date() - timedelta(days=1)
            return f"{start:%Y-%m-%d} to {last:%Y-%m-%d} ({self.timezone})"
        return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({self.timezone})"

    def local_days(self) -> Iterator[date]:
        """Every local day the period touches, in order."""
        zone = ZoneInfo(self.timezone)
        day = self.start.astimezone(zone).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(zone).date()
        while day <= last:
            yield day
            day += timedelta(days=1)

    def local_day(self, at: datetime) -> date:
        """The local day of the instant ``at``."""
        return at.astimezone(ZoneInfo(self.timezone)).date()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        closest = get_close_matches(str(name), sorted(available_timezones()), n=3)
        hint = f"closest: {', '.join(closest)}" if closest else "e.g. 'Asia/Shanghai', 'UTC'"
        raise ValidationError(
            [("timezone", f"unknown time zone {name!r}; use an IANA zone name ({hint})")],
            subject="Period",
        ) from None
