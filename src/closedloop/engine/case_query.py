"""The values of the case queries (the :class:`~closedloop.engine.ports.CaseQueries` port).

What a query selects (:class:`CaseFilter`), what it returns (:class:`CasePage`), what
"overdue" and "warning level" mean for a case, and the checks on page arguments. Every
store that answers the queries applies them alike, so backends answer the same way;
the contract suite in :mod:`closedloop.testing.contract` holds them to it.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from closedloop.engine.clock import utc
from closedloop.engine.hierarchy import covers, is_code
from closedloop.engine.model import JSON, Case, ReporterContact, Warning
from closedloop.errors import ValidationError

MAX_PAGE = 1000
"""The largest page ``find_cases`` returns."""

Order = Literal["oldest", "newest", "urgent", "updated"]
"""The orders of a query: oldest or newest report first, most urgent first (the
running clock's warning level, red before yellow before none, then its due instant;
final cases last), or least recently changed first (``updated``: a case changed while
its pages are read moves to the end, so it may come again on a later page)."""

ORDERS: tuple[Order, ...] = ("oldest", "newest", "urgent", "updated")

Facet = Literal["state", "lead_unit", "warning_level"]
"""What ``facets`` counts cases by."""

FACETS: tuple[Facet, ...] = ("state", "lead_unit", "warning_level")

Show = Callable[[Case, ReporterContact | None, bool], Case | None]
"""How a reader shows each case of a page (see ``ShownCases.select_shown``): given the
case, its stored contact data and whether the case is the caller's own copy (else it
is one the store keeps, which must not change), the case as shown, a copy the caller
may change, or ``None`` to leave it out."""

URGENCY_RANK = {"red": 0, "yellow": 1, "none": 2}
"""The rank of a warning level in the urgent order; a final case (no clock) ranks 3."""


@dataclass(frozen=True, slots=True)
class CasePage:
    """One page of query results, in the order asked for (oldest first by default).

    Attributes:
        cases: The cases of this page (contact data is never included by a store).
        next_cursor: Pass as ``after=`` to get the next page; ``None`` on the last page.
    """

    cases: tuple[Case, ...]
    next_cursor: str | None

    def to_json(self) -> dict[str, JSON]:
        """The page as JSON data: ``{"cases": [...], "next_cursor": "..." or null}``,
        each case as ``Case.model_dump(mode="json")`` writes it."""
        return {
            "cases": [case.model_dump(mode="json") for case in self.cases],
            "next_cursor": self.next_cursor,
        }


def _collections(owner: object, names: tuple[str, ...], kind: type, what: str) -> None:
    """Make each of the ``names`` fields of the frozen ``owner`` a tuple of ``kind``
    (as its annotation says) when it was given another collection (a list, a set), or
    a single text where ``kind`` is text; ``None`` stays. A filter is hashed and
    compared (the SQL stores keep statements by it), so it holds no list.

    Raises:
        ValidationError: a field is not such a collection, or holds something else.
    """
    for name in names:
        value = getattr(owner, name)
        if value is None or (type(value) is tuple and all(isinstance(v, kind) for v in value)):
            continue
        if isinstance(value, str) and kind is str:
            items: tuple[object, ...] = (value,)
        elif isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
            items = tuple(value)
        else:
            items = (value,)  # refused below
        if not all(isinstance(item, kind) for item in items):
            problem = f"must be {what} or a collection of them, not {type(value).__name__}"
            raise ValidationError([(name, problem)], subject="query")
        object.__setattr__(owner, name, items)


@dataclass(frozen=True, slots=True)
class Party:
    """Cases an actor is party to: as their reporter, through a unit, or as the reporter
    of a duplicate merged into the case (``follower``); any one holds."""

    reporter: str | None = None
    lead_units: tuple[str, ...] = ()
    co_units: tuple[str, ...] = ()
    follower: str | None = None

    def __post_init__(self) -> None:
        _collections(self, ("lead_units", "co_units"), str, "a unit id")

    def holds(self, case: Case) -> bool:
        """Whether ``case`` is one the party is related to."""
        return (
            (self.reporter is not None and case.reporter_id == self.reporter)
            or (
                self.follower is not None
                and any(d.reporter == self.follower for d in case.duplicates)
            )
            or (case.lead_unit is not None and case.lead_unit in self.lead_units)
            or not set(self.co_units).isdisjoint(case.co_units)
        )


@dataclass(frozen=True, slots=True)
class Turn:
    """Cases waiting in one of ``states``, for ``party`` (``None``: for anyone there)."""

    states: tuple[str, ...]
    party: Party | None = None

    def __post_init__(self) -> None:
        _collections(self, ("states",), str, "a state name")

    def holds(self, case: Case) -> bool:
        """Whether ``case`` waits in this turn."""
        return case.state in self.states and (self.party is None or self.party.holds(case))


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """What a case query selects; ``None`` means any, and every given criterion must hold.

    ``area`` and ``category`` select the code and everything under it
    (:func:`~closedloop.engine.hierarchy.covers`); ``text`` is a case-insensitive
    substring of the description or the address; ``reported_from`` and
    ``updated_from`` are inclusive, ``reported_before`` and ``updated_before`` exclusive
    (``updated_*`` read the instant of the case's latest change). ``turns`` (any one
    holds) and ``sight`` are what the engine derives from a workflow and an actor: whose
    turn it is, who may see. ``states`` and ``turns`` (and the collections of a
    :class:`Turn` and a :class:`Party`) take any collection, kept as a tuple; a single
    text is one state.
    """

    states: tuple[str, ...] | None = None
    lead_unit: str | None = None
    co_unit: str | None = None
    reporter: str | None = None
    category: str | None = None
    area: str | None = None
    channel: str | None = None
    reported_from: datetime | None = None
    reported_before: datetime | None = None
    updated_from: datetime | None = None
    updated_before: datetime | None = None
    warning_level: str | None = None
    overdue_at: datetime | None = None
    """Cases whose running clock is overdue at this instant (see :func:`is_overdue`)."""
    supervised: bool | None = None
    merged_into: str | None = None
    text: str | None = None
    turns: tuple[Turn, ...] | None = None
    sight: Party | None = None
    workflow: str | None = None
    """Cases of this workflow (the name a case records): an engine selects its own."""

    def __post_init__(self) -> None:
        _collections(self, ("states",), str, "a state name")
        _collections(self, ("turns",), Turn, "a Turn")

    @classmethod
    def of(
        cls,
        state: str | Sequence[str] | None = None,
        lead_unit: str | None = None,
        category: str | None = None,
        area: str | None = None,
        warning_level: str | None = None,
        overdue_at: datetime | None = None,
        *,
        co_unit: str | None = None,
        reporter: str | None = None,
        channel: str | None = None,
        reported_from: datetime | None = None,
        reported_before: datetime | None = None,
        updated_from: datetime | None = None,
        updated_before: datetime | None = None,
        supervised: bool | None = None,
        merged_into: str | None = None,
        text: str | None = None,
    ) -> CaseFilter:
        """Normalise the keyword arguments of the query methods.

        Raises:
            ValidationError: ``area`` or ``category`` is not a code, ``text`` is empty
                or holds a control character,
                ``state`` is neither a state name nor a collection of them.
            NaiveDatetime: an instant has no time zone.
        """
        problems = [
            (name, "must be a code such as 'D1.S1' or '01.02'")
            for name, value in (("area", area), ("category", category))
            if value is not None and not is_code(value)
        ]
        if text is not None:
            problems.extend(("text", problem) for problem in _text_problems(text))
        if problems:
            raise ValidationError(problems, subject="query")
        return cls(
            states=cast("tuple[str, ...] | None", state),  # made one by the constructor
            lead_unit=lead_unit,
            co_unit=co_unit,
            reporter=reporter,
            category=category,
            area=area,
            channel=channel,
            reported_from=_instant(reported_from, "reported_from"),
            reported_before=_instant(reported_before, "reported_before"),
            updated_from=_instant(updated_from, "updated_from"),
            updated_before=_instant(updated_before, "updated_before"),
            warning_level=warning_level,
            overdue_at=_instant(overdue_at, "overdue_at"),
            supervised=supervised,
            merged_into=merged_into,
            text=None if text is None else text.strip(),
        )

    def matches(self, case: Case) -> bool:
        """Whether ``case`` is selected."""
        wanted = (
            (self.workflow, case.workflow),
            (self.lead_unit, case.lead_unit),
            (self.reporter, case.reporter_id),
            (self.channel, case.channel),
            (self.warning_level, warning_level_of(case)),
            (self.supervised, case.supervised),
            (self.merged_into, case.merged_into),
        )
        if any(want is not None and want != have for want, have in wanted):
            return False
        for scope, code in ((self.category, case.category), (self.area, case.location.area)):
            if scope is not None and (code is None or not covers(scope, code)):
                return False
        if self.states is not None and case.state not in self.states:
            return False
        if self.co_unit is not None and self.co_unit not in case.co_units:
            return False
        if self.reported_from is not None and case.reported_at < self.reported_from:
            return False
        if self.reported_before is not None and case.reported_at >= self.reported_before:
            return False
        if self.updated_from is not None and case.updated_at < self.updated_from:
            return False
        if self.updated_before is not None and case.updated_at >= self.updated_before:
            return False
        if self.text is not None and self.text.casefold() not in searchable(case).casefold():
            return False
        if self.turns is not None and not any(turn.holds(case) for turn in self.turns):
            return False
        if self.sight is not None and not self.sight.holds(case):
            return False
        return self.overdue_at is None or is_overdue(case, self.overdue_at)


def _text_problems(text: object) -> list[str]:
    """Why ``text`` cannot be searched for: not text, empty, or holding a control
    character (no case holds one, so such a text would find nothing, or everything
    where a store drops it)."""
    if not isinstance(text, str):
        return [f"must be text, got {type(text).__name__}"]
    if not text.strip():
        return ["must not be empty"]
    for char in text:
        if unicodedata.category(char) == "Cc":
            return [f"contains control character U+{ord(char):04X}; search for printable text"]
    return []


def searchable(case: Case) -> str:
    """The text a ``text`` criterion searches: the description, then the address."""
    return f"{case.description}\n{case.location.address or ''}"


def urgency_key(case: Case) -> tuple[int, datetime | None]:
    """Where ``case`` sorts in the urgent order (before its position in the store)."""
    if case.deadline is None:
        return (3, None)
    return (URGENCY_RANK[case.deadline.warning], case.deadline.due_at)


def encode_cursor(order: Order, key: Sequence[object]) -> str:
    """An opaque cursor holding the sort key of a page's last case."""
    text = json.dumps([order, *key], separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


MAX_CURSOR = 256
"""The longest cursor read, in characters: every cursor a store hands out is far shorter."""

_CURSOR_INT = 2**63 - 1
"""The largest whole number a cursor holds (a database's 64-bit integer)."""

UNDUE = "~"
"""The text a cursor of the urgent order may hold in place of a due instant."""


def decode_cursor(cursor: str, order: Order) -> list[object]:
    """The sort key a cursor holds, read strictly: the order it was handed out for,
    then one to three values, each a whole number from 0 to 2**63 - 1, ``null``,
    :data:`UNDUE`, or an instant in UTC written as the store writes it
    (``2026-03-02T09:00:00+00:00``). Each store checks the key's shape further.

    Raises:
        ValidationError: not a cursor handed out for this order.
    """
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR:
        raise bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad_cursor() from None
    if not isinstance(data, list) or not 2 <= len(data) <= 4 or data[0] != order:
        raise bad_cursor()
    key = list(data[1:])
    if not all(_key_value(value) for value in key):
        raise bad_cursor()
    return key


def _key_value(value: object) -> bool:
    """Whether ``value`` is one a cursor's key may hold (see :func:`decode_cursor`)."""
    if value is None or value == UNDUE:
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return 0 <= value <= _CURSOR_INT
    if not isinstance(value, str):
        return False
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return False
    return instant.utcoffset() == timedelta(0) and instant.isoformat() == value


def _instant(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else utc(value, name)


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


def check_order(order: str) -> Order:
    """Validate an order name.

    Raises:
        ValidationError: not one of :data:`ORDERS`.
    """
    for known in ORDERS:
        if order == known:
            return known
    raise ValidationError([("order", f"must be one of {', '.join(ORDERS)}")], subject="query")


def check_facet(by: str) -> Facet:
    """Validate a facet name.

    Raises:
        ValidationError: not one of :data:`FACETS`.
    """
    for known in FACETS:
        if by == known:
            return known
    raise ValidationError([("by", f"must be one of {', '.join(FACETS)}")], subject="query")
