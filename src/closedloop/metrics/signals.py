"""Supervision signals: behaviour that games the on-time rates, read from the audit trail.

A closed loop judged only by its on-time rates invites units to close just before
the deadline, to ask for extensions by habit, to bounce cases between them, or to
close cases the reporter then says are not resolved; and dispatchers to misroute the
same kind of case again and again. Each signal here counts one such habit per unit
(per pair of units, per dispatcher and category), with its base, the cases behind it
and a threshold from :class:`~closedloop.metrics.SignalConfig`.

A flag is a reason to look, not a verdict: every signal counts what the trail shows,
and the trail does not show why. Each signal's constant below says what it can and
cannot show; ``docs/metrics.md`` gives the formulas.

The trail is read through :mod:`closedloop.metrics.sources`, one case at a time, as
every other metric reads it; nothing is written. It reads the trigger and state names
of the standard workflow.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from closedloop.engine.clock import utc
from closedloop.metrics.checked import require
from closedloop.metrics.config import SignalConfig
from closedloop.metrics.facts import (
    ARBITRATION_STATE,
    CALLBACK_TRIGGERS,
    CLOSED,
    FINAL_STATES,
    HANDLING_CLOCK,
    REWORK_TRIGGERS,
    EventLike,
)
from closedloop.metrics.period import Period
from closedloop.metrics.rates import Cell
from closedloop.metrics.sources import Source, streams
from closedloop.metrics.tally import NO_GROUP

DEADLINE_HUGGING = "deadline_hugging"
"""Results submitted in the last stretch of the allowed handling time (default: the
last 10 %), per unit. Shows a unit that habitually finishes just in time, beside the
district's share and the unit's own spread (``detail``). Cannot show whether the work
truly needed that long: a unit with hard cases hugs honestly."""
EXTENSION_HABIT = "extension_habit"
"""Approved extensions per result submitted in the period, per unit. Shows a unit
that leans on extensions; cannot show whether the extensions were justified (the
approver judged that)."""
LATE_EXTENSIONS = "late_extensions"
"""Extension requests made within the last day before the handling deadline, as a
share of the unit's requests. Shows requests used to dodge a breach; cannot tell a
late request from a late discovery."""
PING_PONG = "ping_pong"
"""Cases a unit returned that were returned two or more times in all, per unit.
Shows cases nobody wants; cannot tell which unit was right (the arbiter decides)."""
PING_PONG_PAIR = "ping_pong_pair"
"""Pairs of units that returned the same cases one after the other (base: the cases
either returned in the period). Shows a boundary
between two units' duties that the responsibility list leaves unclear, or a dispute;
not which side is at fault."""
HOLLOW_CLOSURES = "hollow_closures"
"""A unit's results that the reporter's callback answered "not resolved", that were
sent back within the rework window, or whose closed case was followed by a new report
of the same category at the same place (within a radius where both reports carry
coordinates, else the same area code) within the repeat window. Shows closures on
paper; cannot tell a hollow result from a reporter who is never content, or a repeat
from a new matter at the same place."""
MISROUTING = "misrouting"
"""A dispatcher's dispatch decisions, per category, later overturned by an approved
return or by arbitration. Shows a dispatcher or a category the list routes badly;
cannot show whether the list, the report's wording or the dispatcher was wrong."""
SILENT_CASES = "silent_cases"
"""Open cases whose only events for N working days were the engine's own (warnings,
breaches, escalations), by lead unit at the instant; a case waiting on the reporter
(a paused clock, the confirmation) is not silent. Shows cases left lying; cannot see
work done outside the system, and counts weekdays without holidays."""

SIGNALS: tuple[str, ...] = (
    DEADLINE_HUGGING,
    EXTENSION_HABIT,
    LATE_EXTENSIONS,
    PING_PONG,
    PING_PONG_PAIR,
    HOLLOW_CLOSURES,
    MISROUTING,
    SILENT_CASES,
)
"""Every signal, in the order reports list them."""
COUNTED_SIGNALS = frozenset({PING_PONG, PING_PONG_PAIR, SILENT_CASES})
"""The signals whose value is a count; every other one's is a share (or a ratio)."""

RESULT_TRIGGER = "submit_result"
DECISION_TRIGGERS = frozenset({"dispatch", "redispatch"})


class SignalRow(BaseModel):
    """One signal for one subject over the period.

    Attributes:
        signal: The signal's name (one of :data:`SIGNALS`).
        subject: The unit, the pair of units (``"a <-> b"``) or the dispatcher.
        category: The category of a misrouting row; ``None`` for every other signal.
        count: How many things showed the habit (results, extensions, cases,
            decisions).
        base: What they are counted among.
        value: The figure compared with the threshold: ``count / base`` for a share,
            ``count`` for a count; ``None`` when the base is 0.
        threshold: The threshold from the configuration.
        flagged: Whether the value reached the threshold (a share only on a base of at
            least ``min_base``).
        reason: The finding in one line.
        detail: Context: the district's figure, the unit's own spread.
        cases: The cases behind ``count``, sorted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal: str
    subject: str
    category: str | None = None
    count: int
    base: int
    value: float | None
    threshold: float
    flagged: bool
    reason: str
    detail: str = ""
    cases: tuple[str, ...] = ()


SIGNAL_COLUMNS: tuple[str, ...] = tuple(SignalRow.model_fields)


class SignalReport(BaseModel):
    """Every signal of a period: a row per signal and subject.

    Attributes:
        period: The period the signals count events in.
        as_of: The instant the trail is read up to (events at or after it ignored).
        config: The thresholds used.
        rows: Every row, by signal (in the order of :data:`SIGNALS`), then subject.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: Period
    as_of: datetime
    config: SignalConfig
    rows: tuple[SignalRow, ...]

    @property
    def title(self) -> str:
        """The report's title."""
        return f"Supervision signals, {self.period.label}"

    @property
    def flags(self) -> tuple[SignalRow, ...]:
        """The flagged rows only."""
        return tuple(row for row in self.rows if row.flagged)

    def of(self, signal: str, subject: str, category: str | None = None) -> SignalRow | None:
        """The row of one signal and subject, or ``None`` when it has none."""
        for row in self.rows:
            if (row.signal, row.subject, row.category) == (signal, subject, category):
                return row
        return None

    def flagged_subjects(self, signal: str) -> tuple[str, ...]:
        """The subjects one signal flags, sorted."""
        return tuple(sorted({r.subject for r in self.rows if r.signal == signal and r.flagged}))

    @property
    def columns(self) -> tuple[str, ...]:
        """The export columns (``cases`` as one space-separated cell)."""
        return SIGNAL_COLUMNS

    def records(self) -> Iterator[dict[str, Cell]]:
        """Each row for the exports."""
        for row in self.rows:
            record: dict[str, Cell] = {
                name: getattr(row, name) for name in SIGNAL_COLUMNS if name != "cases"
            }
            record["cases"] = " ".join(row.cases)
            yield record

    def describe(self) -> dict[str, Any]:
        """The report's description for the JSON export."""
        return {
            "title": self.title,
            "period": self.period.model_dump(mode="json"),
            "as_of": self.as_of.isoformat(),
            "thresholds": self.config.model_dump(mode="json"),
        }


def signals(
    source: Source,
    period: Period,
    *,
    as_of: datetime | None = None,
    config: SignalConfig | None = None,
) -> SignalReport:
    """Every supervision signal of ``period``, read from ``source``.

    Args:
        source: Any CaseStore, or each case's events (oldest first), case by case.
        period: Events in this period are counted (results, requests, returns,
            decisions); silent cases are those open at ``as_of``.
        as_of: Read the trail up to this instant (the period's end by default):
            a callback or return after the period still counts against a result or
            decision in it, if it came before ``as_of``.
        config: The thresholds (:class:`~closedloop.metrics.SignalConfig`).

    Raises:
        ValidationError: ``source`` is neither a store nor an iterable, ``period`` is
            not a :class:`Period` or ``config`` not a :class:`SignalConfig`.
        NaiveDatetime: ``as_of`` is naive.
        StoreError: the store failed.
    """
    require(period, Period, "period", "a Period (Period.week or Period.days)")
    cut = period.end if as_of is None else utc(as_of)
    settings = SignalConfig() if config is None else config
    require(settings, SignalConfig, "config", "a SignalConfig")
    gathered = _Gathered(period, cut, settings)
    for events in streams(source):
        if events and events[0].at < cut:
            _walk(gathered, events)
    return SignalReport(period=period, as_of=cut, config=settings, rows=gathered.rows())


# --- gathering, one case at a time -------------------------------------------------


_Point = tuple[float, float] | None
"""Where a report is, by coordinates (latitude, longitude), if it says."""


@dataclass(slots=True)
class _Tally:
    count: int = 0
    base: int = 0
    cases: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Result:
    case_id: str
    unit: str
    at: datetime
    in_period: bool
    hollow: bool = False


@dataclass(slots=True)
class _Decision:
    dispatcher: str
    category: str
    case_id: str
    in_period: bool


@dataclass(slots=True)
class _Gathered:
    period: Period
    as_of: datetime
    config: SignalConfig
    hugging: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    spread: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * 11))
    extensions: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    late: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    returned: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    pairs: dict[tuple[str, str], _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    returners: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    results: list[_Result] = field(default_factory=list)
    closures: list[tuple[_Result, str, str, datetime, _Point]] = field(default_factory=list)
    reports: dict[tuple[str, str], list[tuple[datetime, str, _Point]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    decisions: dict[tuple[str, str], _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    silent: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))

    def rows(self) -> tuple[SignalRow, ...]:
        return tuple(_rows(self))


def _walk(g: _Gathered, events: Sequence[EventLike]) -> None:
    config, period = g.config, g.period
    case_id = events[0].case_id
    unit: str | None = None
    category: str | None = None
    area: str | None = None
    point: _Point = None
    dispatcher: str | None = None
    deadline: Mapping[str, Any] | None = None
    state = ""
    returns: list[tuple[str, datetime]] = []
    decision: _Decision | None = None
    last: _Result | None = None
    last_act = events[0].at
    for event in events:
        at, trigger = event.at, event.trigger
        if at >= g.as_of:
            break
        holder = unit or NO_GROUP
        here = at in period
        if trigger not in config.system_triggers:
            last_act = at
        if trigger == RESULT_TRIGGER:
            last = _Result(case_id, holder, at, here)
            g.results.append(last)
            if here:
                _hug(g, holder, case_id, at, deadline)
                g.extensions[holder].base += 1
        elif trigger == "approve_extension" and here:
            tally = g.extensions[holder]
            tally.count += 1
            tally.cases.add(case_id)
        elif trigger == "request_extension" and here:
            tally = g.late[holder]
            tally.base += 1
            due = _due(deadline)
            if due is not None and due - at <= config.last_day:
                tally.count += 1
                tally.cases.add(case_id)
        elif trigger == "return":
            returns.append((holder, at))
        if trigger in CALLBACK_TRIGGERS and last is not None:
            answer = event.payload.get(config.resolution_field)
            if isinstance(answer, str) and answer in config.unresolved_answers:
                last.hollow = True
        if trigger in REWORK_TRIGGERS and last is not None:
            last.hollow = last.hollow or at - last.at <= config.rework_window
        overturned = trigger == "redispatch" or (
            event.to_state == ARBITRATION_STATE and trigger != "dispatch"
        )
        if overturned and decision is not None:
            if decision.in_period:
                tally = g.decisions[(decision.dispatcher, decision.category)]
                tally.count += 1
                tally.cases.add(case_id)
            decision = None
        changes = event.changes
        if changes:
            unit = changes.get("lead_unit", unit)
            category = changes.get("category", category)
            location = changes.get("location")
            if location is not None:
                area = location.get("area")
                point = _point(location)
            attributes = changes.get("attributes")
            if attributes is not None:
                dispatcher = attributes.get("dispatched_by", dispatcher)
            if "deadline" in changes:
                deadline = changes["deadline"]
        if trigger in DECISION_TRIGGERS and event.to_state == "assigned":
            decision = _Decision(dispatcher or NO_GROUP, category or NO_GROUP, case_id, here)
            if here:
                g.decisions[(decision.dispatcher, decision.category)].base += 1
        if event.to_state == CLOSED and last is not None and category and area:
            g.closures.append((last, category, area, at, point))
        state = event.to_state
    if category and area:
        g.reports[(category, area)].append((events[0].at, case_id, point))
    _ping_pong(g, case_id, returns)
    if state not in FINAL_STATES:
        # A case waiting on the reporter is in the base of open cases, never silent.
        paused = deadline is not None and deadline.get("paused_at") is not None
        waits = paused or state in config.not_silent_states
        _silence(g, unit or NO_GROUP, case_id, None if waits else last_act)


def _due(deadline: Mapping[str, Any] | None) -> datetime | None:
    if deadline is None or deadline.get("clock") != HANDLING_CLOCK:
        return None
    due = deadline["due_at"]
    return due if isinstance(due, datetime) else datetime.fromisoformat(due)


def _hug(
    g: _Gathered, unit: str, case_id: str, at: datetime, deadline: Mapping[str, Any] | None
) -> None:
    due = _due(deadline)
    if deadline is None or due is None:
        return
    started = deadline["started_at"]
    start = started if isinstance(started, datetime) else datetime.fromisoformat(started)
    allowed = (due - start).total_seconds()
    if allowed <= 0:
        return
    used = (at - start).total_seconds() / allowed
    tally = g.hugging[unit]
    tally.base += 1
    g.spread[unit][min(int(used * 10), 10)] += 1
    if g.config.hugging_from <= used <= 1.0:
        tally.count += 1
        tally.cases.add(case_id)


def _ping_pong(g: _Gathered, case_id: str, returns: list[tuple[str, datetime]]) -> None:
    recent = [u for u, at in returns if at in g.period]
    for returner in set(recent):
        g.returned[returner].base += 1
        g.returners[returner].add(case_id)
    if len(returns) < g.config.ping_pong_returns or not recent:
        return
    for returner in set(recent):
        g.returned[returner].count += 1
        g.returned[returner].cases.add(case_id)
    units = [u for u, _ in returns]
    for first, second in itertools.pairwise(units):
        if first != second:
            pair = (min(first, second), max(first, second))
            tally = g.pairs[pair]
            if case_id not in tally.cases:
                tally.count += 1
                tally.cases.add(case_id)


def _silence(g: _Gathered, unit: str, case_id: str, last_act: datetime | None) -> None:
    tally = g.silent[unit]
    tally.base += 1
    if last_act is None:
        return  # the case waits on the reporter (or a decided suspension)
    zone = ZoneInfo(g.period.timezone)
    quiet = _working_days(
        last_act.astimezone(zone).date(), g.as_of.astimezone(zone).date(), g.config
    )
    if quiet >= g.config.silent_working_days:
        tally.count += 1
        tally.cases.add(case_id)


def _working_days(after: date, before: date, config: SignalConfig) -> int:
    """Working days strictly between two local days."""
    days, day = 0, after + timedelta(days=1)
    while day < before:
        days += day.weekday() in config.working_weekdays
        day += timedelta(days=1)
    return days


# --- rows ---------------------------------------------------------------------------


def _repeats(g: _Gathered, window: timedelta) -> None:
    """Mark the results of closed cases that a new report at the same place repeated."""
    for reports in g.reports.values():
        reports.sort(key=lambda report: (report[0], report[1]))
    for result, category, area, closed_at, point in g.closures:
        reports = g.reports.get((category, area), [])
        first = bisect.bisect_right(reports, closed_at, key=lambda report: report[0])
        for reported_at, other, where in reports[first:]:
            if reported_at - closed_at > window:
                break
            if other != result.case_id and reported_at < g.as_of and _near(g, point, where):
                result.hollow = True
                break


def _hollow(g: _Gathered) -> dict[str, _Tally]:
    window = g.config.repeat_window
    if window is not None:
        _repeats(g, window)
    by_unit: dict[str, _Tally] = defaultdict(_Tally)
    seen: dict[str, set[str]] = defaultdict(set)
    for result in g.results:
        if not result.in_period:
            continue
        tally = by_unit[result.unit]
        if result.case_id not in seen[result.unit]:
            seen[result.unit].add(result.case_id)
            tally.base += 1
        if result.hollow and result.case_id not in tally.cases:
            tally.count += 1
            tally.cases.add(result.case_id)
    return by_unit


def _point(location: Mapping[str, Any]) -> _Point:
    lat, long = location.get("lat"), location.get("long")
    return None if lat is None or long is None else (float(lat), float(long))


def _near(g: _Gathered, first: _Point, second: _Point) -> bool:
    """Whether two reports of one area are at the same place: within the radius when
    both carry coordinates, else by their area alone."""
    if first is None or second is None:
        return True
    (lat1, long1), (lat2, long2) = first, second
    rise = math.radians(lat2 - lat1)
    run = math.radians(long2 - long1)
    h = (
        math.sin(rise / 2) ** 2
        + math.cos(math.radians(lat1)) * math.cos(math.radians(lat2)) * math.sin(run / 2) ** 2
    )
    return 2 * _EARTH_M * math.asin(min(1.0, math.sqrt(h))) <= g.config.repeat_radius_m


_EARTH_M = 6_371_000.0
"""The Earth's mean radius in metres."""


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


def _share(count: int, base: int) -> float | None:
    return count / base if base else None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _district(tallies: Mapping[Any, _Tally]) -> float | None:
    return _share(sum(t.count for t in tallies.values()), sum(t.base for t in tallies.values()))


def _rows(g: _Gathered) -> Iterator[SignalRow]:
    c = g.config
    district = _district(g.hugging)
    last = f"the last {1 - c.hugging_from:.0%} of the allowed time"
    for unit, t in sorted(g.hugging.items()):
        spread = " ".join(str(n) for n in g.spread[unit])
        yield _shared(
            DEADLINE_HUGGING, unit, t, c.hugging_share, c.min_base,
            f"{t.count} of {t.base} results in {last}",
            f"district {_percent(district)}; by tenth of the time used (last: late) {spread}",
        )  # fmt: skip
    for unit, t in sorted(g.extensions.items()):
        value = t.count / t.base if t.base else None
        flagged = value is not None and t.base >= c.min_base and value >= c.extensions_per_result
        reason = f"{t.count} extensions approved for {t.base} results"
        yield _row(EXTENSION_HABIT, unit, t, value, c.extensions_per_result, flagged, reason)
    for unit, t in sorted(g.late.items()):
        yield _shared(
            LATE_EXTENSIONS, unit, t, c.late_extension_share, c.min_base,
            f"{t.count} of {t.base} extension requests within {_hours(c.last_day)} of the deadline",
        )  # fmt: skip
    for unit, t in sorted(g.returned.items()):
        reason = f"returned {t.count} cases that were returned {c.ping_pong_returns}+ times"
        flagged = t.count >= c.ping_pong_cases
        yield _row(PING_PONG, unit, t, t.count, c.ping_pong_cases, flagged, reason)
    for (first, second), t in sorted(g.pairs.items()):
        t.base = len(g.returners[first] | g.returners[second])
        pair = f"{first} <-> {second}"
        reason = f"{t.count} cases bounced between {first} and {second}"
        flagged = t.count >= c.ping_pong_cases
        yield _row(PING_PONG_PAIR, pair, t, t.count, c.ping_pong_cases, flagged, reason)
    for unit, t in sorted(_hollow(g).items()):
        yield _shared(
            HOLLOW_CLOSURES, unit, t, c.hollow_share, c.min_base,
            f"{t.count} of {t.base} closed cases unresolved, reworked or reported again",
        )  # fmt: skip
    for (dispatcher, category), t in sorted(g.decisions.items()):
        row = _shared(
            MISROUTING, dispatcher, t, c.misrouting_share, c.min_base,
            f"{t.count} of {t.base} dispatches in category {category} overturned",
        )  # fmt: skip
        yield row.model_copy(update={"category": category})
    for unit, t in sorted(g.silent.items()):
        reason = (
            f"{t.count} of {t.base} open cases silent for {c.silent_working_days}+ working days"
        )
        flagged = t.count >= c.silent_cases
        yield _row(SILENT_CASES, unit, t, t.count, c.silent_cases, flagged, reason)


def _shared(
    signal: str, subject: str, t: _Tally, threshold: float, min_base: int, reason: str,
    detail: str = "",
) -> SignalRow:  # fmt: skip
    value = _share(t.count, t.base)
    flagged = value is not None and t.base >= min_base and value >= threshold
    text = f"{reason} ({_percent(value)}, threshold {_percent(threshold)})"
    return _row(signal, subject, t, value, threshold, flagged, text, detail)


def _row(
    signal: str, subject: str, t: _Tally, value: float | None, threshold: float,
    flagged: bool, reason: str, detail: str = "",
) -> SignalRow:  # fmt: skip
    return SignalRow(
        signal=signal, subject=subject, count=t.count, base=t.base, value=value,
        threshold=threshold, flagged=flagged, reason=reason, detail=detail,
        cases=tuple(sorted(t.cases)),
    )  # fmt: skip
