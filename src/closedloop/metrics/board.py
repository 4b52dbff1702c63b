"""The supervision board (督办看板): open cases by warning level, flags, the oldest overdue.

The board shows the open cases at one instant, per lead unit (cases not yet
dispatched sit with ``"(none)"``: the dispatchers' queue). The warning level is the
one the engine recorded on the running clock (yellow when the warning time passed,
red once due); "overdue" is computed from the due instant at the board's instant, so
it is right even when no tick has run since.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from closedloop.engine.clock import utc
from closedloop.metrics.config import SignalConfig
from closedloop.metrics.facts import CaseFacts, summarize_all
from closedloop.metrics.period import Period
from closedloop.metrics.rates import Cell
from closedloop.metrics.signals import SignalRow, signals
from closedloop.metrics.sources import Source, is_store, streams
from closedloop.metrics.tally import NO_GROUP, TOTAL


class FlaggedCase(BaseModel):
    """An open case that needs a supervisor's eye: warned, supervised or overdue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_id: str
    unit: str
    state: str
    clock: str | None
    warning: str
    supervised: bool
    due_at: datetime | None
    overdue_hours: float | None
    """How long past due at the board's instant; ``None`` when not overdue."""


class BoardRow(BaseModel):
    """One unit's line on the board."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str
    open: int = 0
    yellow: int = 0
    red: int = 0
    supervised: int = 0
    overdue: int = 0
    oldest_overdue_case: str | None = None
    oldest_overdue_due_at: datetime | None = None
    oldest_overdue_hours: float | None = None


BOARD_COLUMNS: tuple[str, ...] = tuple(BoardRow.model_fields)
FLAGGED_COLUMNS: tuple[str, ...] = tuple(FlaggedCase.model_fields)


class SupervisionBoard(BaseModel):
    """The board at ``as_of``: a row per unit, a total, and the flagged cases.

    Attributes:
        as_of: The instant the board shows.
        rows: One row per unit with open cases, sorted by unit.
        total: All units together (the oldest overdue case of all).
        flagged: The open cases that are yellow, red, supervised or overdue, the
            longest overdue first.
        flagged_units: The units (pairs of units, dispatchers) a supervision signal
            flags over the period the board was asked for (``signals_over``), in
            the order of :data:`~closedloop.metrics.signals.SIGNALS`; empty otherwise.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    as_of: datetime
    rows: tuple[BoardRow, ...]
    total: BoardRow
    flagged: tuple[FlaggedCase, ...]
    flagged_units: tuple[SignalRow, ...] = ()

    @property
    def title(self) -> str:
        """A short description, for file titles."""
        return f"supervision board at {self.as_of:%Y-%m-%d %H:%M} UTC"

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of the per-unit table."""
        return BOARD_COLUMNS

    def row(self, unit: str) -> BoardRow:
        """The row of ``unit``; an empty row when the unit has no open case."""
        return next((r for r in self.rows if r.unit == unit), BoardRow(unit=unit))

    def records(self) -> Iterator[dict[str, Cell]]:
        """The per-unit rows, then the total, as mappings of column to value."""
        for found in (*self.rows, self.total):
            yield found.model_dump(mode="json")

    def describe(self) -> dict[str, object]:
        """What the table is, as JSON data."""
        return {"title": self.title, "as_of": self.as_of.isoformat()}

    def flag_lines(self) -> tuple[str, ...]:
        """The flagged units, one line each: who, the signal and the reason."""
        return tuple(
            f"{row.subject}{'' if row.category is None else f' ({row.category})'}: "
            f"{row.signal}: {row.reason}"
            for row in self.flagged_units
        )

    def flagged_table(self) -> FlaggedTable:
        """The flagged cases as a table of their own, for export."""
        return FlaggedTable(as_of=self.as_of, cases=self.flagged)


class FlaggedTable(BaseModel):
    """The flagged cases of a board, as an exportable table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    as_of: datetime
    cases: tuple[FlaggedCase, ...]

    @property
    def title(self) -> str:
        """A short description, for file titles."""
        return f"flagged open cases at {self.as_of:%Y-%m-%d %H:%M} UTC"

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns, one per field of :class:`FlaggedCase`."""
        return FLAGGED_COLUMNS

    def records(self) -> Iterator[dict[str, Cell]]:
        """Each flagged case as a mapping of column to value."""
        for case in self.cases:
            yield case.model_dump(mode="json")

    def describe(self) -> dict[str, object]:
        """What the table is, as JSON data."""
        return {"title": self.title, "as_of": self.as_of.isoformat()}


def supervision_board(
    source: Source,
    *,
    as_of: datetime,
    signals_over: Period | None = None,
    signal_config: SignalConfig | None = None,
) -> SupervisionBoard:
    """The supervision board of the open cases in ``source`` just before ``as_of``.

    Args:
        source: Any CaseStore, or each case's events (oldest first), case by case.
        as_of: The instant the board shows.
        signals_over: Also list the units the supervision signals flag over this
            period, read up to ``as_of`` or the period's end, whichever is earlier
            (``flagged_units``).
        signal_config: The signals' thresholds.

    Raises:
        NaiveDatetime: ``as_of`` has no time zone.
        StoreError: the store failed while being read.
    """
    when = utc(as_of, "as_of")
    units: tuple[SignalRow, ...] = ()
    if signals_over is not None:
        if not is_store(source):
            source = [list(events) for events in streams(source)]  # read twice
        cut = min(when, signals_over.end)
        units = signals(source, signals_over, as_of=cut, config=signal_config).flags
    lines: dict[str, _Line] = {}
    total = _Line()
    flagged: list[FlaggedCase] = []
    for facts in summarize_all(streams(source), as_of=when):
        if not facts.is_open:
            continue
        case = _flag(facts)
        lines.setdefault(case.unit, _Line()).add(case)
        total.add(case)
        if case.warning != "none" or case.supervised or case.overdue_hours is not None:
            flagged.append(case)
    flagged.sort(key=lambda c: (c.overdue_hours is None, -(c.overdue_hours or 0.0), c.case_id))
    return SupervisionBoard(
        as_of=when,
        rows=tuple(lines[unit].row(unit) for unit in sorted(lines)),
        total=total.row(TOTAL),
        flagged=tuple(flagged),
        flagged_units=units,
    )


def _flag(facts: CaseFacts) -> FlaggedCase:
    overdue = None
    if facts.overdue():
        assert facts.due_at is not None
        stopped = facts.paused_at or facts.as_of
        overdue = (stopped - facts.due_at).total_seconds() / 3600
    return FlaggedCase(
        case_id=facts.case_id,
        unit=facts.lead_unit or NO_GROUP,
        state=facts.state,
        clock=facts.clock,
        warning=facts.warning,
        supervised=facts.supervised,
        due_at=facts.due_at,
        overdue_hours=overdue,
    )


@dataclass(slots=True)
class _Line:
    open: int = 0
    yellow: int = 0
    red: int = 0
    supervised: int = 0
    overdue: int = 0
    oldest: FlaggedCase | None = None

    def add(self, case: FlaggedCase) -> None:
        self.open += 1
        self.yellow += case.warning == "yellow"
        self.red += case.warning == "red"
        self.supervised += case.supervised
        hours = case.overdue_hours
        if hours is None:
            return
        self.overdue += 1
        oldest = self.oldest
        if oldest is None or (hours, oldest.case_id) > (oldest.overdue_hours or 0.0, case.case_id):
            self.oldest = case  # the longest overdue; of equals, the smallest id

    def row(self, unit: str) -> BoardRow:
        oldest = self.oldest
        return BoardRow(
            unit=unit,
            open=self.open,
            yellow=self.yellow,
            red=self.red,
            supervised=self.supervised,
            overdue=self.overdue,
            oldest_overdue_case=None if oldest is None else oldest.case_id,
            oldest_overdue_due_at=None if oldest is None else oldest.due_at,
            oldest_overdue_hours=None if oldest is None else oldest.overdue_hours,
        )
