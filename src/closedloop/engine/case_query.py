"""The values of the case queries (the :class:`~closedloop.engine.ports.CaseQueries` port).

What a query selects (:class:`CaseFilter`), what it returns (:class:`CasePage`), what
"overdue" and "warning level" mean for a case, and the checks on page arguments. Every
store that answers the queries applies them alike, so backends answer the same way;
the contract suite in :mod:`closedloop.testing.contract` holds them to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from closedloop.engine.clock import utc
from closedloop.engine.model import Case, Warning
from closedloop.errors import ValidationError

MAX_PAGE = 1000
"""The largest page ``find_cases`` returns."""


@dataclass(frozen=True, slots=True)
class CasePage:
    """One page of ``find_cases`` results, oldest case first.

    Attributes:
        cases: The cases of this page (contact data is never included).
        next_cursor: Pass as ``after=`` to get the next page; ``None`` on the last page.
    """

    cases: tuple[Case, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """What ``find_cases`` and ``count_cases`` select; ``None`` means any."""

    states: tuple[str, ...] | None = None
    lead_unit: str | None = None
    category: str | None = None
    area: str | None = None
    warning_level: str | None = None
    overdue_at: datetime | None = None
    """Cases whose running clock is overdue at this instant (see :func:`is_overdue`)."""

    @classmethod
    def of(
        cls,
        state: str | Sequence[str] | None,
        lead_unit: str | None,
        category: str | None,
        area: str | None,
        warning_level: str | None,
        overdue_at: datetime | None,
    ) -> CaseFilter:
        """Normalise the keyword arguments of the query methods."""
        states = (state,) if isinstance(state, str) else None if state is None else tuple(state)
        when = None if overdue_at is None else utc(overdue_at, "overdue_at")
        return cls(states, lead_unit, category, area, warning_level, when)

    def matches(self, case: Case) -> bool:
        """Whether ``case`` is selected."""
        wanted = (
            (self.lead_unit, case.lead_unit),
            (self.category, case.category),
            (self.area, case.location.area),
            (self.warning_level, warning_level_of(case)),
        )
        if any(want is not None and want != have for want, have in wanted):
            return False
        if self.states is not None and case.state not in self.states:
            return False
        return self.overdue_at is None or is_overdue(case, self.overdue_at)


def warning_level_of(case: Case) -> Warning | None:
    """The warning level of the case's running clock; ``None`` when no clock runs."""
    return None if case.deadline is None else case.deadline.warning


def is_overdue(case: Case, at: datetime) -> bool:
    """Whether the case's running clock is past its due instant at ``at``.

    A paused clock is overdue only if it was already overdue when it paused: the pause
    moves the due instant on when the clock resumes.
    """
    deadline = case.deadline
    if deadline is None or deadline.due_at > at:
        return False
    return deadline.paused_at is None or deadline.due_at <= deadline.paused_at


def check_page(limit: int) -> None:
    """Validate a page size.

    Raises:
        ValidationError: ``limit`` is not between 1 and :data:`MAX_PAGE`.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError([("limit", f"must be between 1 and {MAX_PAGE}")], subject="query")


def bad_cursor() -> ValidationError:
    """The error for a cursor the store did not hand out."""
    return ValidationError([("after", "is not a cursor returned by this store")], subject="query")
