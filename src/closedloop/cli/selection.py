"""The cases ``closedloop cases`` lists, asked of the engine's query API.

Every option is a criterion of :meth:`closedloop.Engine.find` and ``count``, which the
store answers with its indexes, one keyset page at a time: ``--state`` is ``state``,
``--unit`` is ``lead_unit``, ``--overdue`` is ``overdue_at`` (now), ``--search`` is
``text``. ``--waiting-on`` narrows the states asked for to those its party owns; a
unit or a reporter is also the engine's ``waiting_on`` actor (the lead unit's or a
co-unit's turn, or the reporter's). Cases are read as an operator reads them: by a
viewer holding every role of the workflow that sees every case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from closedloop.engine.definition import Workflow
from closedloop.engine.model import Actor, Case
from closedloop.engine.reading import Criteria
from closedloop.engine.service import Engine
from closedloop.errors import UnknownName, ValidationError

WAITING_ON_FORMS = "role:NAME, unit:ID or reporter:ID"

UNIT_MEMBER = "closedloop-cases"
"""The id of the actor a ``unit:ID`` query asks for the turns of (a member of that unit
and nothing else; the states asked for leave out any turn it has as a reporter)."""


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

    def actor(self) -> Actor | None:
        """The actor whose turn the engine's ``waiting_on`` selects; ``None`` for a
        role, whose states alone say which cases wait on it.

        Raises:
            ValidationError: the id is not one an actor may have.
        """
        if self.kind == "unit":
            return Actor(UNIT_MEMBER, units=frozenset({self.value}))
        return Actor(self.value) if self.kind == "reporter" else None


def _role_kinds(workflow: Workflow) -> dict[str, str]:
    return {role.name: role.kind for role in workflow.roles}


def operator(workflow: Workflow) -> Actor | None:
    """An actor who sees every case: one holding each role with ``sees_all``; ``None``
    when the workflow has no such role."""
    roles = frozenset(r.name for r in workflow.roles if r.kind == "global" and r.sees_all)
    return Actor("closedloop-operator", roles=roles) if roles else None


@dataclass(frozen=True, slots=True)
class Selection:
    """What to list, as the engine's query criteria."""

    workflow: Workflow
    states: tuple[str, ...] | None = None
    unit: str | None = None
    overdue_at: datetime | None = None
    waiting_on: WaitingOn | None = None
    search: str | None = None
    asked_states: tuple[str, ...] | None = field(init=False)
    """The states asked for (``None``: any)."""

    def __post_init__(self) -> None:
        declared = [state.name for state in self.workflow.states]
        for state in self.states or ():
            if state not in declared:
                raise UnknownName("state", state, declared)
        states = set(self.states or declared)
        if self.waiting_on is not None:
            owners = self.waiting_on.owner_roles(self.workflow)
            states &= {s.name for s in self.workflow.states if s.owner in owners and not s.final}
        narrowed = None if states == set(declared) else tuple(s for s in declared if s in states)
        object.__setattr__(self, "asked_states", narrowed)

    @property
    def criteria(self) -> Criteria:
        """The criteria of the engine's ``find`` and ``count``."""
        return Criteria(
            state=self.asked_states,
            lead_unit=self.unit,
            overdue_at=self.overdue_at,
            waiting_on=self.waiting_on.actor() if self.waiting_on is not None else None,
            text=self.search,
        )

    @property
    def empty(self) -> bool:
        """Whether no state can hold a matching case (nothing to ask)."""
        return self.asked_states == ()


@dataclass(frozen=True, slots=True)
class Found:
    """The first ``limit`` matching cases, whether more match, and how many do."""

    cases: Sequence[Case]
    more: bool
    total: int


def find(engine: Engine, viewer: Actor, selection: Selection, limit: int) -> Found:
    """The oldest ``limit`` cases (at most one page) that match ``selection``, as
    ``viewer`` sees them, and how many match.

    Raises:
        ValidationError: a criterion is malformed.
        StoreError: the database cannot be read.
    """
    if selection.empty:
        return Found((), False, 0)
    criteria = selection.criteria
    total = engine.count(viewer, **criteria)
    page = engine.find(viewer, order="oldest", limit=limit, **criteria)
    return Found(page.cases, total > len(page.cases), total)
