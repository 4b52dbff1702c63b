"""Metric tables: the counts of each group and the rates over them.

Every rate is a fraction between 0 and 1, or ``None`` when its denominator is zero
(no case to judge: not 0 %, not 100 %). ``docs/metrics.md`` gives each formula with
its denominator; the code of each formula is in :meth:`MetricRow.of`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from closedloop.engine.clock import utc
from closedloop.engine.definition import Workflow
from closedloop.metrics.checked import require
from closedloop.metrics.config import MetricsConfig
from closedloop.metrics.facts import summarize_all
from closedloop.metrics.period import Period
from closedloop.metrics.sources import Source, streams
from closedloop.metrics.tally import COUNTED, TOTAL, Dimension, Grouping, Tabulator, Tally

Cell = str | int | float | None
"""A value in an exported table."""


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or ``None`` when there is nothing to divide by."""
    return numerator / denominator if denominator > 0 else None


class MetricRow(BaseModel):
    """The counts and rates of one group (a unit, a category ...) or of the total.

    Counts are described in ``docs/metrics.md``; each rate names its numerator and
    denominator below.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str
    # intake: cases reported in the period
    reported: int
    filed: int
    dispatched: int
    answered: int
    rejected: int
    merged: int
    # handling: cases whose handling clock falls due in the period
    due: int
    suspended: int
    closed: int
    closed_on_time: int
    extended: int
    overdue: int
    # cases closed in the period; events in the period
    closures: int
    reworked: int
    reworks: int
    extensions: int
    # dispatch quality
    returns: int
    misdirects: int
    arbitrations: int
    sign_for_due: int
    signed_on_time: int
    # co-units: subtask clocks falling due in the period
    subtasks_due: int
    subtasks_on_time: int
    # citizen loop
    response_base: int
    responded: int
    resolution_base: int
    resolved: float
    rated: int
    satisfied: float
    # rates
    filing_rate: float | None
    """filed / reported"""
    dispatch_rate: float | None
    """dispatched / filed"""
    closure_rate: float | None
    """closed / (due, less suspended cases when they are excluded)"""
    on_time_closure_rate: float | None
    """closed_on_time / (due, less suspended cases when they are excluded)"""
    rework_rate: float | None
    """reworked / due (cases due to close in the period, 应结案)"""
    extension_rate: float | None
    """extended / due"""
    overdue_multiple: float | None
    """mean over the overdue cases of (time used / time allowed)"""
    on_time_sign_for_rate: float | None
    """signed_on_time / sign_for_due"""
    on_time_subtask_rate: float | None
    """subtasks_on_time / subtasks_due"""
    response_rate: float | None
    """responded / response_base"""
    resolution_rate: float | None
    """resolved / resolution_base (weighted)"""
    satisfaction_rate: float | None
    """satisfied / rated (weighted)"""

    @classmethod
    def of(cls, group: str, tally: Tally, config: MetricsConfig) -> MetricRow:
        """The row of ``group`` from its tally; the formulas of every rate are here."""
        counts = {name: getattr(tally, name) for name in _COUNTS}
        assessed = tally.due - (tally.suspended if config.exclude_suspended else 0)
        return cls(
            group=group,
            **counts,
            filing_rate=ratio(tally.filed, tally.reported),
            dispatch_rate=ratio(tally.dispatched, tally.filed),
            closure_rate=ratio(tally.closed, assessed),
            on_time_closure_rate=ratio(tally.closed_on_time, assessed),
            rework_rate=ratio(tally.reworked, tally.due),
            extension_rate=ratio(tally.extended, tally.due),
            overdue_multiple=ratio(tally.overdue_multiple_sum, tally.overdue),
            on_time_sign_for_rate=ratio(tally.signed_on_time, tally.sign_for_due),
            on_time_subtask_rate=ratio(tally.subtasks_on_time, tally.subtasks_due),
            response_rate=ratio(tally.responded, tally.response_base),
            resolution_rate=ratio(tally.resolved, tally.resolution_base),
            satisfaction_rate=ratio(tally.satisfied, tally.rated),
        )


_COUNTS = tuple(name for name in COUNTED if name != "overdue_multiple_sum")
COLUMNS: tuple[str, ...] = tuple(MetricRow.model_fields)
"""The columns of a metric table, in order."""


class MetricTable(BaseModel):
    """The metrics of one period, grouped by one dimension, with a total row.

    Attributes:
        period: The period reported on.
        as_of: The instant the cases were taken at (events from then on ignored).
        by: The grouping dimension, or ``None`` (only the total).
        depth: The code depth grouped at, for ``area`` and ``category``.
        config: The definitions the rates were computed with.
        rows: One row per group, sorted by group.
        total: All groups together (every count attributed to exactly one group).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: Period
    as_of: datetime
    by: Dimension | None
    depth: int | None
    config: MetricsConfig
    rows: tuple[MetricRow, ...]
    total: MetricRow

    @property
    def title(self) -> str:
        """A short description, for file and chart titles."""
        grouped = f" by {self.by}" if self.by else ""
        return f"metrics{grouped}, {self.period.label}"

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names, ``group`` first."""
        return COLUMNS

    def row(self, group: str) -> MetricRow:
        """The row of ``group`` (``"(all)"`` is the total).

        Raises:
            KeyError: no row has that group.
        """
        if group == TOTAL:
            return self.total
        for found in self.rows:
            if found.group == group:
                return found
        raise KeyError(group)

    def records(self) -> Iterator[dict[str, Cell]]:
        """Each row as a mapping of column to value, then the total row."""
        for found in (*self.rows, self.total):
            yield found.model_dump()

    def describe(self) -> dict[str, Any]:
        """What the table is, as JSON data: period, instant, grouping, definitions."""
        return {
            "title": self.title,
            "period": self.period.model_dump(mode="json"),
            "as_of": self.as_of.isoformat(),
            "by": self.by,
            "depth": self.depth,
            "config": self.config.model_dump(mode="json"),
        }


def compute(
    source: Source,
    period: Period,
    *,
    by: Dimension | None = None,
    depth: int | None = None,
    config: MetricsConfig | None = None,
    as_of: datetime | None = None,
    workflow: Workflow | None = None,
) -> MetricTable:
    """The metric table of ``period`` from the audit events of ``source``.

    Reads one case at a time; memory grows with the number of groups, not of cases.

    Args:
        source: A CaseStore, or an iterable of each case's events (oldest first).
        period: The period to report on.
        by: Group by ``unit``, ``category``, ``area``, ``urgency`` or ``channel``;
            ``None`` gives only the total.
        depth: For ``area`` and ``category``: group at this many code segments.
        config: The rate definitions; the documented defaults when ``None``.
        as_of: Take cases as they stood just before this instant; the period's end by
            default. Before the end, the period counts only up to ``as_of``.
        workflow: The workflow the cases were written with; when given, the fields
            ``config`` reads from callbacks (``rating_field``, ``resolution_field``)
            must be fields its callback triggers declare, so that a misspelt field
            is refused rather than giving an empty rate.

    Raises:
        ValidationError: ``source`` is neither a store nor an iterable, ``period`` is
            not a :class:`Period`, ``by``, ``depth`` or ``config`` is not valid, or
            ``config`` names a callback field ``workflow`` does not declare.
        NaiveDatetime: ``as_of`` has no time zone.
        StoreError: the store failed while being read.
    """
    require(period, Period, "period", "a Period (Period.week or Period.days)")
    config = MetricsConfig() if config is None else config
    require(config, MetricsConfig, "config", "a MetricsConfig")
    if workflow is not None:
        require(workflow, Workflow, "workflow", "a Workflow")
        config.three_rates.check_fields(workflow)
    when = period.end if as_of is None else utc(as_of, "as_of")
    tabulator = Tabulator(period, Grouping(by, depth), config, when)
    callbacks = config.three_rates.callback_triggers
    for facts in summarize_all(streams(source), as_of=when, callbacks=callbacks):
        tabulator.count(facts)
    return table_of(tabulator)


def table_of(tabulator: Tabulator) -> MetricTable:
    """The table of what ``tabulator`` counted."""
    total = Tally()
    for tally in tabulator.groups.values():
        total.add(tally)
    config = tabulator.config
    rows = tuple(
        MetricRow.of(group, tabulator.groups[group], config)
        for group in sorted(tabulator.groups)
        if tabulator.grouping.by is not None
    )
    return MetricTable(
        period=tabulator.period,
        as_of=tabulator.as_of,
        by=tabulator.grouping.by,
        depth=tabulator.grouping.depth,
        config=config,
        rows=rows,
        total=MetricRow.of(TOTAL, total, config),
    )
