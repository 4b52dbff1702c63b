"""The invariants :func:`~closedloop.testing.workflow_state_machine` checks after each step.

Each check reads a case through the engine and its store and raises ``AssertionError``
with a sentence saying what is wrong; they are usable on their own in a host's tests::

    for case_id in store.case_ids():
        check_case(engine, case_id)
        check_timers(engine, case_id)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from closedloop.engine.access import roles_on
from closedloop.engine.audit import canonical_json
from closedloop.engine.case_query import FACETS, CaseFilter, warning_level_of
from closedloop.engine.context import Context
from closedloop.engine.definition import TransitionSpec, Workflow
from closedloop.engine.kinds import SUBTASK_TRIGGERS, EngineTrigger
from closedloop.engine.model import SYSTEM, Actor, AuditEvent, Case, to_stored
from closedloop.engine.ports import CaseQueries, DuePoint
from closedloop.engine.service import Engine
from closedloop.errors import CaseNotFound

TIMER_TRIGGERS = frozenset(
    {EngineTrigger.WARN, EngineTrigger.BREACH, EngineTrigger.ESCALATE, *SUBTASK_TRIGGERS}
)
"""Triggers the engine records when a timer fires; their payload carries ``due_at``."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One case as its store holds it: the case, its audit events, and the timers the
    engine derives from it."""

    case: Case
    events: list[AuditEvent]
    due_points: list[DuePoint]


def snapshot(engine: Engine, case_id: str) -> Snapshot:
    """Read the case and its events in one store transaction, with its due points."""
    with engine.store.transaction(read_only=True) as tx:
        case = tx.get_case(case_id)
        assert case is not None, f"case {case_id!r} vanished from the store"
        events = tx.get_events(case_id)
    return Snapshot(case, events, engine.due_points(case))


def check_case(engine: Engine, case_id: str, *, version: int | None = None) -> Snapshot:
    """A case is in a declared state, waits on its owner with its clock running (or, if
    final, on nobody and without a clock), and its audit chain verifies and replays.

    Args:
        version: The version the caller last saw; the stored one must be the same.
    """
    workflow = engine.workflow
    report = engine.verify(case_id)
    assert report.ok, f"case {case_id!r}: the audit trail does not verify: {report.problems}"
    seen = snapshot(engine, case_id)
    case = seen.case
    if version is not None:
        assert case.version == version, (
            f"case {case_id!r} is at version {case.version}; the last command left it at {version}"
        )
    assert case.state in {s.name for s in workflow.states}, f"undeclared state {case.state!r}"
    assert seen.events[-1].to_state == case.state, "the last event does not lead to the state"
    state = workflow.state(case.state)
    if state.final:
        assert case.deadline is None, f"final case {case_id!r} has a running clock"
        assert case.waiting_on is None, f"final case {case_id!r} still waits on someone"
    else:
        assert case.waiting_on == state.owner, (
            f"case {case_id!r} in {case.state!r} waits on {case.waiting_on!r}, not {state.owner!r}"
        )
        assert case.deadline is not None, f"case {case_id!r} waits in {case.state!r} untimed"
        assert case.deadline.clock == state.clock, "the running clock is not the state's"
    return seen


def check_timers(engine: Engine, case_id: str, seen: Snapshot | None = None) -> None:
    """No timer of the case fired before its due time or twice; a final case has none left."""
    seen = seen or snapshot(engine, case_id)
    fired: set[tuple[str, object, object, str]] = set()
    for event in seen.events:
        if event.trigger not in TIMER_TRIGGERS:
            continue
        due_text = event.payload.get("due_at")
        assert isinstance(due_text, str), f"timer event {event.seq} of {case_id!r} has no due_at"
        due = datetime.fromisoformat(due_text)
        assert event.at >= due, (
            f"case {case_id!r}: {event.trigger!r} fired at {event.at.isoformat()}, "
            f"before it was due at {due_text}"
        )
        key = (event.trigger, event.payload.get("level"), event.payload.get("unit"), due_text)
        assert key not in fired, f"case {case_id!r}: {event.trigger!r} due {due_text} fired twice"
        fired.add(key)
    if engine.workflow.state(seen.case.state).final:
        assert not seen.due_points, (
            f"final case {case_id!r} still has live timers: {[p.id for p in seen.due_points]}"
        )


def check_next_due(stored: datetime | None, seen: Iterable[Snapshot]) -> None:
    """The store's next due instant (``stored``, as ``Engine.next_due_at`` answers) is
    the earliest timer the engine derives from the cases ``seen`` (every case of the
    store): a store that keeps a closed case's timer, or moves one, is caught here.
    """
    earliest = min((s.due_points[0].due_at for s in seen if s.due_points), default=None)
    assert stored == earliest, (
        f"the store's next timer is due at {stored and stored.isoformat()}, but the "
        f"cases' earliest timer is due at {earliest and earliest.isoformat()}"
    )


def check_facets(queries: CaseQueries) -> None:
    """The store's counts per state, lead unit and warning level (what ``Engine.facets``
    answers a viewer who sees every case), and per lead unit within the commonest state,
    are those its cases make: a store that keeps counts as cases change, and misses a
    change, is caught here. Reads every case: for test stores.
    """
    cases: list[Case] = []
    after = None
    while True:
        page = queries.select_cases(CaseFilter(), order="oldest", after=after, limit=1000)
        cases += page.cases
        if page.next_cursor is None:
            break
        after = page.next_cursor
    values: dict[str, Callable[[Case], str | None]] = {
        "state": lambda c: c.state,
        "lead_unit": lambda c: c.lead_unit,
        "warning_level": warning_level_of,
    }
    asked = [CaseFilter.of(state=s) for s, _ in Counter(c.state for c in cases).most_common(1)]
    for where, by in [*((CaseFilter(), by) for by in FACETS), *((w, "lead_unit") for w in asked)]:
        wanted = Counter(values[by](c) for c in cases if where.matches(c))
        counted = queries.facet_counts(where, by)
        assert counted == dict(wanted), (
            f"the store counts {counted} cases per {by} ({where}), but its cases make "
            f"{dict(wanted)}"
        )


def check_kept_cases(
    kept: Mapping[tuple[str, int], Case], build: Callable[[str, int], Case]
) -> None:
    """Each case a store keeps built, by the stored text and version it stands for, is
    the case ``build`` makes of that text at that version: equal, with the same JSON,
    and stored with the same fields (a record's fields as given). A store that keeps the
    cases it wrote, to spare reading them back, and would read back another case (or
    one its writer's caller can still change), is caught here.

    Args:
        kept: The kept cases by stored body text and version.
        build: How the store builds a case from a body's text and a version.
    """
    for (text, version), case in kept.items():
        built = build(text, version)
        assert built == case, f"case {case.id!r} v{version} is kept as {case!r}, read as {built!r}"
        assert built.model_dump_json() == case.model_dump_json(), (
            f"case {case.id!r} v{version} is kept with other JSON than it reads back with"
        )
        assert canonical_json(to_stored(built)) == canonical_json(to_stored(case)), (
            f"case {case.id!r} v{version} is kept with another stored form than it reads with"
        )
        assert built.model_fields_set == case.model_fields_set, (
            f"case {case.id!r} v{version} is kept with other fields given than it reads with"
        )


LATER: tuple[timedelta, ...] = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=7),
    timedelta(days=30),
    timedelta(days=400),
)
"""How far ahead :func:`check_can_move` looks, besides the case's own due points."""


def check_can_move(
    engine: Engine,
    case: Case,
    candidates: Iterable[Actor],
    *,
    now: datetime,
    later: Callable[[datetime], Engine] | None = None,
) -> None:
    """A non-final case is not stuck: some actor is offered a trigger by ``Engine.allowed``
    now or at some later instant, or its clock will fire an expiry action.

    ``allowed`` runs guards with an empty payload, as a user interface asking which
    buttons to show would; a trigger whose guard refuses after looking for one of the
    trigger's own fields counts as a way out, one that only other payload opens is not
    seen.

    Args:
        candidates: Who might act; the case's reporter and unit members are added.
        now: The engine clock's current instant, for explaining guards' refusals.
        later: Builds an engine over the same store whose clock reads the instant
            given. When nobody can move the case now, it is asked again at each of the
            case's pending due points and at :data:`LATER` from now: a guard waiting
            for an appointment or a cooling-off period is not a trap; one that refuses
            at every future instant is.
    """
    workflow = engine.workflow
    state = workflow.state(case.state)
    if state.final or _expiry_will_move(workflow, case):
        return
    actors = [*candidates, *relatives(case)]
    seeing = []
    for actor in actors:
        try:
            if engine.allowed(case.id, actor):
                return
        except CaseNotFound:  # this actor may not see the case at all
            continue
        seeing.append(actor)
    if later is not None and seeing:
        due = [p.due_at for p in snapshot(engine, case.id).due_points if p.due_at > now]
        for instant in sorted({*due, *(now + step for step in LATER)}):
            future = later(instant)
            if any(future.allowed(case.id, actor) for actor in seeing):
                return
    reasons = [
        _why_not(workflow, case, t, actors, now) for t in workflow.transitions_from(state.name)
    ]
    waited = " now or at any later instant" if later is not None else ""
    raise AssertionError(
        f"case {case.id!r} waits in {case.state!r} on {state.owner!r}, and nobody can move "
        f"it{waited}: {'; '.join(reasons)}"
    )


def relatives(case: Case) -> list[Actor]:
    """Actors related to ``case``: its reporter and members of its lead and co-units."""
    units = [u for u in (case.lead_unit, *case.co_units) if u]
    return [Actor(case.reporter_id), *(Actor(f"member-{u}", units=frozenset({u})) for u in units)]


def _expiry_will_move(workflow: Workflow, case: Case) -> bool:
    deadline = case.deadline
    if deadline is None or deadline.paused_at is not None:
        return False
    return workflow.clock(deadline.clock).on_expiry is not None


def _why_not(
    workflow: Workflow,
    case: Case,
    transition: TransitionSpec,
    actors: Sequence[Actor],
    now: datetime,
) -> str:
    roles = workflow.roles_for(transition, case.counters)
    holders = [a for a in [*actors, SYSTEM] if roles_on(workflow, case, a) & set(roles)]
    if not holders:
        return f"{transition.name!r} needs one of {list(roles)}, which nobody holds on this case"
    for name in transition.guards:
        ctx = Context(case, holders[0], {}, now, transition)
        refusal = workflow.registry.guard(name)(ctx)
        if refusal is not None:
            return f"{transition.name!r} is refused by guard {name!r}: {refusal}"
    return f"{transition.name!r} is open only to {list(roles)}, who cannot see the case"
