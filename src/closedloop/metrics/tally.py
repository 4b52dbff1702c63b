"""Counting case facts into groups: which case counts where, in which cohort.

Each count belongs to a cohort fixed by one instant of the case (see
``docs/metrics.md``):

* intake and the response rate: cases *reported* in the period;
* closure, on time, extensions, overdue: cases whose handling clock *falls due* in
  the period, wherever they were reported (cases carried over included);
* rework: cases whose handling clock *falls due* in the period (应结案), reworked;
* resolution and satisfaction: callbacks *made* in the period, and closures without
  a callback (closed unconfirmed) in the period;
* on-time sign-for: sign-for clocks that *fall due* in the period;
* on-time subtasks: co-units' subtask clocks that *fall due* in the period, counted
  for the co-unit;
* returns, misdirects, arbitrations, reworks and extensions as events: those that
  *happened* in the period.

Grouped by unit, a count goes to the unit the record belongs to: the unit that held
the case at a return or a callback, the unit whose sign-for or handling clock it was;
case-level counts (intake, closures, the response rate) go to the case's lead unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal, get_args

from closedloop.errors import ValidationError
from closedloop.metrics.config import MetricsConfig, ThreeRates
from closedloop.metrics.facts import HANDLING_CLOCK, CaseFacts, filed_at
from closedloop.metrics.period import Period

Dimension = Literal["unit", "category", "area", "urgency", "channel"]
"""What a metric table can be grouped by."""
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)
NO_GROUP = "(none)"
"""The group of cases without a value for the dimension (no unit yet, no category)."""
TOTAL = "(all)"
"""The group of the total row."""


@dataclass(slots=True)
class Tally:
    """The running counts of one group; the formulas over them are in ``MetricRow``."""

    reported: int = 0
    filed: int = 0
    dispatched: int = 0
    answered: int = 0
    rejected: int = 0
    merged: int = 0
    due: int = 0
    suspended: int = 0
    closed: int = 0
    closed_on_time: int = 0
    extended: int = 0
    overdue: int = 0
    overdue_multiple_sum: float = 0.0
    closures: int = 0
    reworked: int = 0
    reworks: int = 0
    extensions: int = 0
    returns: int = 0
    misdirects: int = 0
    arbitrations: int = 0
    sign_for_due: int = 0
    signed_on_time: int = 0
    subtasks_due: int = 0
    subtasks_on_time: int = 0
    response_base: int = 0
    responded: int = 0
    resolution_base: int = 0
    resolved: float = 0.0
    rated: int = 0
    satisfied: float = 0.0

    def add(self, other: Tally) -> None:
        """Add the counts of ``other`` to these."""
        for name in COUNTED:
            setattr(self, name, getattr(self, name) + getattr(other, name))


COUNTED = tuple(f.name for f in fields(Tally))
"""The names of a tally's counts, in order."""
_PLURAL = {"return": "returns", "misdirect": "misdirects", "arbitration": "arbitrations"}
_EVENT_COUNTS = {**_PLURAL, "rework": "reworks", "extension": "extensions"}


@dataclass(frozen=True, slots=True)
class Grouping:
    """How a case's records are sorted into groups.

    Attributes:
        by: The dimension, or ``None`` for one group (the total).
        depth: For ``area`` and ``category``: group by the code's first ``depth``
            segments (``2`` groups grids by street); ``None`` keeps whole codes.
    """

    by: Dimension | None = None
    depth: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.by is not None and self.by not in DIMENSIONS:
            choices = ", ".join(DIMENSIONS)
            problems.append(("by", f"cannot group by {self.by!r}; choose one of {choices}"))
        depth = self.depth
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or depth < 1
        ):
            problems.append(
                ("depth", f"must be a whole number of code segments, at least 1, not {depth!r}")
            )
        if problems:
            raise ValidationError(problems, subject="grouping")

    def of_case(self, facts: CaseFacts) -> str:
        """The group of the case's own counts."""
        if self.by is None:
            return TOTAL
        value = facts.lead_unit if self.by == "unit" else getattr(facts, self.by)
        if value is None:
            return NO_GROUP
        if self.depth is not None and self.by in ("area", "category"):
            return ".".join(value.split(".")[: self.depth])
        return str(value)

    def of_unit(self, unit: str | None, facts: CaseFacts) -> str:
        """The group of a record that belongs to ``unit`` (by unit) or to the case."""
        if self.by != "unit":
            return self.of_case(facts)
        return NO_GROUP if unit is None else unit


class Tabulator:
    """Counts case facts into tallies by group, for one period seen at one instant.

    Args:
        period: The period to count.
        grouping: How to group.
        config: The rate definitions (exclusions, weights).
        as_of: The instant the facts were taken at; before the period's end, the
            period counts only up to it.
    """

    def __init__(
        self, period: Period, grouping: Grouping, config: MetricsConfig, as_of: datetime
    ) -> None:
        self.period = period
        self.grouping = grouping
        self.config = config
        self.as_of = as_of
        # Before the period's end, the period so far; at or before its start, nothing.
        self._start, self._end = period.start, max(period.start, min(period.end, as_of))
        self.groups: dict[str, Tally] = {}

    def tally(self, group: str) -> Tally:
        """The tally of ``group``, created empty on first use."""
        found = self.groups.get(group)
        if found is None:
            found = self.groups[group] = Tally()
        return found

    def count(self, facts: CaseFacts) -> None:
        """Add one case's counts; ``facts`` must be taken at this tabulator's ``as_of``."""
        start, end, grouping = self._start, self._end, self.grouping
        own = self.tally(grouping.of_case(facts))
        if facts.reported_at is not None and start <= facts.reported_at < end:
            _count_intake(own, facts, self.config.three_rates)
        rates = self.config.three_rates
        if facts.closed_at is not None and start <= facts.closed_at < end:
            _count_closure(own, facts, rates)
        for callback in facts.callbacks:
            if start <= callback.at < end and callback.trigger in rates.callback_triggers:
                tally = self.tally(grouping.of_unit(callback.unit, facts))
                _count_answers(tally, facts, rates, callback.payload)
        handling = facts.handling
        if handling is not None and start <= handling.due_at < end:
            _count_due(self.tally(grouping.of_unit(handling.unit, facts)), facts)
        for assignment in facts.assignments:
            if start <= assignment.due_at < end and not assignment.ended:
                tally = self.tally(grouping.of_unit(assignment.unit, facts))
                tally.sign_for_due += 1
                accepted = assignment.accepted_at
                tally.signed_on_time += accepted is not None and accepted <= assignment.due_at
        for task in facts.subtasks.values():
            if start <= task.due_at < end and not task.ended:
                tally = self.tally(grouping.of_unit(task.unit, facts))
                tally.subtasks_due += 1
                tally.subtasks_on_time += task.done_at is not None and task.done_at <= task.due_at
        for happening in facts.happenings:
            if start <= happening.at < end:
                tally = self.tally(grouping.of_unit(happening.unit, facts))
                name = _EVENT_COUNTS[happening.kind]
                setattr(tally, name, getattr(tally, name) + 1)


def _count_intake(tally: Tally, facts: CaseFacts, rates: ThreeRates) -> None:
    first = facts.first_trigger
    tally.reported += 1
    tally.filed += filed_at(facts) is not None
    tally.dispatched += "dispatch" in first
    tally.answered += "answer" in first
    tally.rejected += facts.state == "rejected"
    tally.merged += facts.state == "merged"
    if rates.assessed(facts.category, facts.channel) and facts.state not in rates.excluded_states:
        tally.response_base += 1
        tally.responded += not rates.response_triggers.isdisjoint(first)


def _count_closure(tally: Tally, facts: CaseFacts, rates: ThreeRates) -> None:
    tally.closures += 1
    if facts.closing_trigger not in rates.callback_triggers:  # closed without a callback
        _count_answers(tally, facts, rates, {})


def _count_answers(
    tally: Tally, facts: CaseFacts, rates: ThreeRates, answers: Mapping[str, Any]
) -> None:
    """Count one callback's answers (none: a closure without a callback)."""
    if not rates.assessed(facts.category, facts.channel):
        return
    answer = answers.get(rates.resolution_field)
    weight = rates.unrated_resolution if answer is None else rates.resolution_weights.get(answer)
    if answer is not None or weight is not None:
        tally.resolution_base += 1
        tally.resolved += weight or 0.0
    rating = answers.get(rates.rating_field)
    weight = (
        rates.unrated_satisfaction if rating is None else rates.satisfaction_weights.get(rating)
    )
    if rating is not None or weight is not None:
        tally.rated += 1
        tally.satisfied += weight or 0.0


def _count_due(tally: Tally, facts: CaseFacts) -> None:
    handling = facts.handling
    assert handling is not None
    tally.due += 1
    tally.reworked += facts.reworks > 0
    tally.suspended += facts.suspended and facts.is_open
    tally.extended += facts.extensions > 0
    closed_at = facts.closed_at
    if closed_at is not None:
        tally.closed += 1
        tally.closed_on_time += closed_at <= handling.due_at and facts.late_rounds == 0
    ended = closed_at if closed_at is not None else facts.as_of
    if closed_at is None and facts.clock == HANDLING_CLOCK and facts.paused_at is not None:
        ended = facts.paused_at  # a paused clock uses no time
    if ended > handling.due_at:
        tally.overdue += 1
        allowed = (handling.due_at - handling.started_at).total_seconds()
        used = (ended - handling.started_at).total_seconds()
        tally.overdue_multiple_sum += used / allowed if allowed > 0 else 0.0
