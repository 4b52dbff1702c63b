"""The cases ``closedloop cases`` lists: the store's query, then a scan for the rest.

``--state``, ``--unit`` and ``--overdue`` go to the store's ``find_cases`` (indexed,
keyset pages). ``--waiting-on`` and ``--search`` have no store criterion yet: they
narrow the states asked for where they can, then filter each page in Python, reading
pages until enough cases match. That scan reads every case the store criteria select,
in the worst case; the engine's query API is meant to replace it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from closedloop.engine.definition import Workflow
from closedloop.engine.model import Case
from closedloop.engine.ports import CaseQueries
from closedloop.errors import UnknownName, ValidationError

SCAN_PAGE = 1000
"""Cases read per page while filtering in Python."""

WAITING_ON_FORMS = "role:NAME, unit:ID or reporter:ID"


@dataclass(frozen=True, slots=True)
class WaitingOn:
    """Who a case waits on: a role by name, a unit's members, or one reporter."""

    kind: str
    """``role``, ``unit`` or ``reporter``."""
    value: str

    @classmethod
    def parse(cls, text: str, workflow: Workflow) -> WaitingOn:
        """``role:NAME`` (or a bare role name), ``unit:ID`` or ``reporter:ID``.

        Raises:
            ValidationError: another form, or an empty value.
            UnknownName: a role the workflow does not declare.
        """
        kind, colon, value = text.partition(":")
        if not colon:
            kind, value = "role", text
        if kind not in ("role", "unit", "reporter") or not value:
            raise ValidationError([("--waiting-on", f"write {WAITING_ON_FORMS}")], subject="query")
        if kind == "role" and value not in _role_kinds(workflow):
            raise UnknownName("role", value, _role_kinds(workflow))
        return cls(kind, value)

    def owner_roles(self, workflow: Workflow) -> set[str]:
        """The roles a state's owner must be for its cases to wait on this party."""
        if self.kind == "role":
            return {self.value}
        kinds = {"unit": ("lead_unit", "co_unit"), "reporter": ("reporter",)}[self.kind]
        return {role.name for role in workflow.roles if role.kind in kinds}

    def holds(self, case: Case, workflow: Workflow) -> bool:
        """Whether ``case`` waits on this party (its ``waiting_on`` role is theirs)."""
        if case.waiting_on is None:
            return False
        if self.kind == "role":
            return case.waiting_on == self.value
        kind = _role_kinds(workflow).get(case.waiting_on)
        if self.kind == "reporter":
            return kind == "reporter" and case.reporter_id == self.value
        return (kind == "lead_unit" and case.lead_unit == self.value) or (
            kind == "co_unit" and self.value in case.co_units
        )


def _role_kinds(workflow: Workflow) -> dict[str, str]:
    return {role.name: role.kind for role in workflow.roles}


@dataclass(frozen=True, slots=True)
class Selection:
    """What to list: the store's criteria, then the scan's."""

    workflow: Workflow
    states: tuple[str, ...] | None = None
    unit: str | None = None
    overdue_at: datetime | None = None
    waiting_on: WaitingOn | None = None
    search: str | None = None
    store_states: tuple[str, ...] | None = field(init=False)
    """The states asked of the store (``None``: any)."""

    def __post_init__(self) -> None:
        declared = [state.name for state in self.workflow.states]
        for state in self.states or ():
            if state not in declared:
                raise UnknownName("state", state, declared)
        states = set(self.states or declared)
        if self.waiting_on is not None:
            owners = self.waiting_on.owner_roles(self.workflow)
            states = {s.name for s in self.workflow.states if s.owner in owners} & states
        narrowed = None if states == set(declared) else tuple(s for s in declared if s in states)
        object.__setattr__(self, "store_states", narrowed)

    @property
    def criteria(self) -> dict[str, Any]:
        """The keyword arguments of the store's ``find_cases`` and ``count_cases``."""
        return {"state": self.store_states, "lead_unit": self.unit, "overdue_at": self.overdue_at}

    @property
    def scans(self) -> bool:
        """Whether cases are filtered in Python after the store's query."""
        return self.waiting_on is not None or bool(self.search)

    @property
    def empty(self) -> bool:
        """Whether no state can hold a matching case (nothing to ask the store)."""
        return self.store_states == ()

    def matches(self, case: Case) -> bool:
        """Whether ``case`` passes the scan's filters."""
        if self.waiting_on is not None and not self.waiting_on.holds(case, self.workflow):
            return False
        return self.search is None or _contains(case, self.search)


def _contains(case: Case, text: str) -> bool:
    wanted = text.casefold()
    haystacks = (case.description, case.location.address or "")
    return any(wanted in haystack.casefold() for haystack in haystacks)


@dataclass(frozen=True, slots=True)
class Found:
    """The first ``limit`` matching cases, whether more match, and the total if known."""

    cases: Sequence[Case]
    more: bool
    total: int | None


def find(store: CaseQueries, selection: Selection, limit: int) -> Found:
    """The oldest ``limit`` cases that match ``selection``.

    Raises:
        StoreError: the database cannot be read.
    """
    if selection.empty:
        return Found((), False, 0)
    total = None if selection.scans else store.count_cases(**selection.criteria)
    size = SCAN_PAGE if selection.scans else min(limit + 1, SCAN_PAGE)
    found = _scan(store, selection, size, lambda got: len(got) > limit)
    return Found(found[:limit], len(found) > limit, total)


def _scan(
    store: CaseQueries, selection: Selection, size: int, enough: Callable[[list[Case]], bool]
) -> list[Case]:
    found: list[Case] = []
    cursor: str | None = None
    while True:
        page = store.find_cases(**selection.criteria, after=cursor, limit=size)
        found += [case for case in page.cases if selection.matches(case)]
        if enough(found) or page.next_cursor is None:
            return found
        cursor = page.next_cursor
