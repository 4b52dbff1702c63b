"""Intake against closures, day by day: the series behind the intake chart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from closedloop.engine.clock import utc
from closedloop.metrics.checked import require
from closedloop.metrics.facts import filed_at, summarize_all
from closedloop.metrics.period import Period
from closedloop.metrics.rates import Cell
from closedloop.metrics.sources import Source, streams


class DayRow(BaseModel):
    """One local day: cases reported, filed and closed that day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: date
    reported: int = 0
    filed: int = 0
    closed: int = 0


DAY_COLUMNS: tuple[str, ...] = tuple(DayRow.model_fields)


class DailySeries(BaseModel):
    """A row per local day of the period (in the period's time zone), empty days included.

    A case counts on the day it was reported, the day it was filed and the day it
    closed; days are cut at midnight in ``period.timezone``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: Period
    as_of: datetime
    rows: tuple[DayRow, ...]

    @property
    def title(self) -> str:
        """A short description, for file and chart titles."""
        first, last = self.rows[0].day, self.rows[-1].day
        return f"intake and closures per day, {first} to {last} ({self.period.timezone})"

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names, ``day`` first."""
        return DAY_COLUMNS

    def records(self) -> Iterator[dict[str, Cell]]:
        """Each day as a mapping of column to value (the day as ISO text)."""
        for row in self.rows:
            yield row.model_dump(mode="json")

    def describe(self) -> dict[str, object]:
        """What the table is, as JSON data."""
        return {
            "title": self.title,
            "period": self.period.model_dump(mode="json"),
            "as_of": self.as_of.isoformat(),
        }


def daily(source: Source, period: Period, *, as_of: datetime | None = None) -> DailySeries:
    """Cases reported, filed and closed on each day of ``period``.

    Args:
        source: A CaseStore, or an iterable of each case's events (oldest first).
        period: The days to count, cut in ``period.timezone``.
        as_of: Ignore events from this instant on; the period's end by default.

    Raises:
        ValidationError: ``source`` is neither a store nor an iterable, or ``period``
            is not a :class:`Period`.
        NaiveDatetime: ``as_of`` has no time zone.
        StoreError: the store failed while being read.
    """
    require(period, Period, "period", "a Period (Period.week or Period.days)")
    when = period.end if as_of is None else utc(as_of, "as_of")
    start, end = period.start, min(period.end, when)
    counts = {day: [0, 0, 0] for day in period.local_days()}
    for facts in summarize_all(streams(source), as_of=when):
        filed = filed_at(facts)
        for column, at in enumerate((facts.reported_at, filed, facts.closed_at)):
            if at is not None and start <= at < end:
                counts[period.local_day(at)][column] += 1
    rows = tuple(
        DayRow(day=day, reported=n[0], filed=n[1], closed=n[2]) for day, n in counts.items()
    )
    return DailySeries(period=period, as_of=when, rows=rows)
