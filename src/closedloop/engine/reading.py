"""The engine's read side: who sees which cases, whose turn a case is, and pages of them.

:class:`Reader` turns a viewer and the host's criteria into a
:class:`~closedloop.engine.case_query.CaseFilter` the store answers with its indexes
(the :class:`~closedloop.engine.ports.CaseQueries` port), then shows each found case
as :meth:`closedloop.Engine.get` would: only cases the viewer may see, contact data
masked unless the viewer is entitled to it. Whose turn a case is comes from the
workflow: each state's ``owner`` role, and what that role's kind relates to.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TypedDict, cast, get_args

from closedloop.engine.access import Viewing
from closedloop.engine.case_query import (
    CaseFilter,
    CasePage,
    Facet,
    Party,
    Show,
    Turn,
    check_facet,
    check_order,
)
from closedloop.engine.definition import Workflow
from closedloop.engine.model import Actor, Case, ReporterContact, Warning, unshared
from closedloop.engine.ports import CaseQueries, CaseStore, ShownCases
from closedloop.errors import StoreError, ValidationError


class Criteria(TypedDict, total=False):
    """The criteria of :meth:`closedloop.Engine.find` (see there); ``None`` means any."""

    state: str | Sequence[str] | None
    waiting_on: Actor | None
    lead_unit: str | None
    co_unit: str | None
    reporter: str | None
    area: str | None
    category: str | None
    channel: str | None
    reported_from: datetime | None
    reported_before: datetime | None
    updated_from: datetime | None
    updated_before: datetime | None
    warning_level: str | None
    overdue_at: datetime | None
    supervised: bool | None
    merged_into: str | None
    text: str | None


def turns_of(workflow: Workflow, actor: Actor) -> tuple[Turn, ...]:
    """The states where a case waits on ``actor``, and the relation it needs there.

    A state owned by a global role waits on every holder of that role; one owned by a
    ``lead_unit``, ``co_unit`` or ``reporter`` role waits on the members of the case's
    lead unit or co-units, or on its reporter.
    """
    by_owner: dict[str, list[str]] = defaultdict(list)
    for state in workflow.states:
        if state.owner is not None and not state.final:
            by_owner[state.owner].append(state.name)
    units = tuple(sorted(actor.units))
    turns: list[Turn] = []
    for owner, states in by_owner.items():
        role = workflow.role(owner)
        party: Party | None
        match role.kind:
            case "global":
                if role.name not in actor.roles:
                    continue
                party = None
            case "reporter":
                party = Party(reporter=actor.id)
            case "lead_unit":
                party = Party(lead_units=units)
            case "co_unit":
                party = Party(co_units=units)
        if party == Party():
            continue  # a unit role, and the actor belongs to no unit
        turns.append(Turn(tuple(states), party))
    return tuple(turns)


def sight_of(workflow: Workflow, actor: Actor) -> Party | None:
    """The cases ``actor`` may see, as a relation; ``None`` when they may see every case.

    The same rule as :func:`~closedloop.engine.access.can_see`: a ``sees_all`` global
    role sees everything; otherwise the reporter, lead unit and co-unit relations the
    workflow's roles name, and the cases a report of theirs was merged into.
    """
    kinds = {role.kind for role in workflow.roles}
    if any(r.kind == "global" and r.sees_all and r.name in actor.roles for r in workflow.roles):
        return None
    units = tuple(sorted(actor.units))
    return Party(
        reporter=actor.id if "reporter" in kinds else None,
        lead_units=units if "lead_unit" in kinds else (),
        co_units=units if "co_unit" in kinds else (),
        follower=actor.id,
    )


def _within(turn: Turn, sight: Party) -> bool:
    """Whether every case ``turn`` selects is one ``sight`` selects."""
    party = turn.party
    if party is None:
        return False
    return (
        party.reporter in (None, sight.reporter)
        and set(party.lead_units) <= set(sight.lead_units)
        and set(party.co_units) <= set(sight.co_units)
        and party.follower in (None, sight.follower)
    )


_CRITERIA = tuple(sorted(Criteria.__required_keys__ | Criteria.__optional_keys__))


def checked_criteria(workflow: Workflow, criteria: Mapping[str, object]) -> Criteria:
    """``criteria`` as those of :meth:`closedloop.Engine.find`, with their names and
    their closed sets of values checked: a misspelt criterion or state would otherwise
    select nothing, silently.

    ``state`` (one or a collection) must name states of ``workflow`` and
    ``warning_level`` one of the levels; the other criteria are checked where the
    filter is built. A collection of states given as an iterator is read once, here.

    Raises:
        ValidationError: a name that is not a criterion, or a state or warning level
            that does not exist; each named, with what is allowed.
    """
    known = _CRITERIA
    problems = [
        (name, f"is not a criterion; criteria: {', '.join(known)}")
        for name in criteria
        if name not in known
    ]
    checked = dict(criteria)
    state = checked.get("state")
    states: tuple[object, ...] = ()
    if isinstance(state, str):
        states = (state,)
    elif (
        state is not None and isinstance(state, Iterable) and not isinstance(state, bytes | Mapping)
    ):
        states = checked["state"] = tuple(state)
    if states:
        declared = sorted(s.name for s in workflow.states)
        problems += [
            ("state", f"unknown state {name!r}; known: {', '.join(declared)}")
            for name in states
            if isinstance(name, str) and name not in declared
        ]
    level, levels = checked.get("warning_level"), get_args(Warning)
    if level is not None and level not in levels:
        problems.append(
            ("warning_level", f"unknown warning level {level!r}; known: {', '.join(levels)}")
        )
    if problems:
        raise ValidationError(problems, subject="query")
    return cast(Criteria, checked)


class Reader:
    """Answers :meth:`closedloop.Engine.find`, ``count``, ``inbox`` and ``facets``."""

    KEEP = 256
    """The filters kept (see :meth:`criteria`)."""

    def __init__(self, workflow: Workflow, store: CaseStore) -> None:
        self._workflow = workflow
        self._store = store
        self._answering: CaseQueries | None = None  # the store, once it was checked
        self._shows: ShownCases | None = None  # the store, when it reads contacts along
        self._shows_each = False  # whether its select_shown takes ``show``
        self._filters: dict[tuple[object, ...], CaseFilter] = {}  # see criteria()

    def criteria(
        self,
        viewer: Actor,
        *,
        state: str | Sequence[str] | None = None,
        waiting_on: Actor | None = None,
        lead_unit: str | None = None,
        co_unit: str | None = None,
        reporter: str | None = None,
        area: str | None = None,
        category: str | None = None,
        channel: str | None = None,
        reported_from: datetime | None = None,
        reported_before: datetime | None = None,
        updated_from: datetime | None = None,
        updated_before: datetime | None = None,
        warning_level: str | None = None,
        overdue_at: datetime | None = None,
        supervised: bool | None = None,
        merged_into: str | None = None,
        text: str | None = None,
    ) -> CaseFilter:
        """The filter of the host's criteria, narrowed to the cases of this workflow and
        to what ``viewer`` may see.

        A filter is worked out once for the same viewer and criteria, and kept (at most
        :attr:`KEEP` of them, then all are dropped at once): a screen asked again reuses it.

        Raises:
            ValidationError: a criterion is malformed.
            NaiveDatetime: an instant has no time zone.
        """
        asked: tuple[object, ...] = (
            viewer, waiting_on, state, lead_unit, co_unit, reporter, area, category, channel,
            reported_from, reported_before, updated_from, updated_before, warning_level,
            overdue_at, supervised, merged_into, text,
        )  # fmt: skip
        key: tuple[object, ...] | None = asked
        try:
            found = self._filters.get(asked)
        except TypeError:  # a criterion that cannot be a key (a list of states)
            key, found = None, None
        if found is not None:
            return found
        where = CaseFilter.of(
            state,
            lead_unit,
            category,
            area,
            warning_level,
            overdue_at,
            co_unit=co_unit,
            reporter=reporter,
            channel=channel,
            reported_from=reported_from,
            reported_before=reported_before,
            updated_from=updated_from,
            updated_before=updated_before,
            supervised=supervised,
            merged_into=merged_into,
            text=text,
        )
        turns = None if waiting_on is None else turns_of(self._workflow, waiting_on)
        sight = sight_of(self._workflow, viewer)
        if sight is not None and turns is not None and all(_within(t, sight) for t in turns):
            sight = None  # each turn already requires a relation the viewer sees through
        where = replace(where, turns=turns, sight=sight, workflow=self._workflow.name)
        if key is not None:
            if len(self._filters) >= self.KEEP:
                self._filters.clear()  # one step, whichever thread gets here
            self._filters[key] = where
        return where

    def find(
        self, viewer: Actor, where: CaseFilter, *, order: str, after: str | None, limit: int
    ) -> CasePage:
        """One page of the cases ``where`` selects, each shown as ``viewer`` may see it."""
        queries = self._queries()
        order = check_order(order)
        # The store's filter already holds to what the viewer may see; checked again here.
        # Each case shown is a copy of its own, with the contact data as the viewer may
        # see it: a ``ShownCases`` store hands each case of the page to ``show`` with its
        # contact data, as a copy made for this caller (given its contact data in place)
        # or as a case it keeps (copied once, with it); a ``select_cases`` page may hold
        # the objects a store keeps (the in-memory store's), and is copied.
        viewing = Viewing(self._workflow, viewer)
        if self._shows is not None and self._shows_each:  # the page and contacts in one read
            page, _ = self._shows.select_shown(
                where, order=order, after=after, limit=limit, show=_shower(viewing)
            )
            return page
        shown: list[Case] = []
        if self._shows is not None:  # a store whose select_shown takes no ``show``
            page, known = self._shows.select_shown(where, order=order, after=after, limit=limit)
            for case in page.cases:
                update = viewing.shown(case, known.get(case.id))
                if update is not None:
                    shown.append(_set_in_place(case, update))
            return CasePage(tuple(shown), page.next_cursor)
        page = queries.select_cases(where, order=order, after=after, limit=limit)
        seen = [case for case in page.cases if viewing.sees(case)]
        known = queries.contacts_of([case.id for case in seen])
        for case in seen:
            update = viewing.shown(case, known.get(case.id))
            if update is not None:  # always: seen above
                shown.append(unshared(case, update))
        return CasePage(tuple(shown), page.next_cursor)

    def count(self, where: CaseFilter) -> int:
        """How many cases ``where`` selects."""
        return self._queries().count_selected(where)

    def facets(self, where: CaseFilter, by: str) -> dict[str | None, int]:
        """How many cases ``where`` selects per value of ``by``."""
        facet: Facet = check_facet(by)
        return self._queries().facet_counts(where, facet)

    def _queries(self) -> CaseQueries:
        if self._answering is not None:
            return self._answering
        if not isinstance(self._store, CaseQueries):
            raise StoreError(
                f"{type(self._store).__name__} answers no case queries: it does not "
                "implement closedloop.engine.ports.CaseQueries"
            )
        # Checked once: a protocol's isinstance costs more than a page's SQL.
        shows = self._store if isinstance(self._store, ShownCases) else None
        # A host's store may implement the port as it stood before ``show`` (pages and
        # their contact data only): still read so.
        self._shows_each = (
            shows is not None and "show" in inspect.signature(shows.select_shown).parameters
        )
        self._shows = shows
        self._answering = self._store
        return self._store


def _shower(viewing: Viewing) -> Show:
    """The ``show`` of ``viewing``: each case as :meth:`Viewing.shown` shows it, the
    caller's own copy (see :data:`~closedloop.engine.case_query.Show`)."""

    def show(case: Case, contact: ReporterContact | None, own: bool) -> Case | None:
        update = viewing.shown(case, contact)
        if update is None:
            return None
        return _set_in_place(case, update) if own else unshared(case, update)

    return show


def _set_in_place(case: Case, update: Mapping[str, object]) -> Case:
    """``case``, a copy made for this caller, with the fields of ``update`` set in place
    (as :func:`closedloop.engine.model.given` sets a field)."""
    case.__dict__.update(update)
    case.__pydantic_fields_set__.update(update)
    return case
