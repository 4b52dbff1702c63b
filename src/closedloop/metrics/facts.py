"""One case's audit events folded into the facts the metrics count.

The fold reads events as they are stored: the trigger, the states, the payload and
the ``changes`` each event made to the case body (see :mod:`closedloop.engine.audit`).
It needs no workflow object and no calendar, so it runs over events from any store;
it reads the trigger and state names of the standard workflow, which a host
workflow keeps when it wants these metrics.

Events at or after ``as_of`` are ignored: the facts describe the case as it stood
just before that instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

FINAL_STATES = frozenset({"closed", "rejected", "merged", "cancelled"})
"""The standard workflow's final states."""
CLOSED = "closed"
FILED_STATE = "classified"
MERGED_STATE = "merged"
HANDLING_CLOCK = "handling"
SIGN_FOR_CLOCK = "sign_for"
REWORK_TRIGGERS = frozenset({"reject_result", "reopen", "send_back"})
"""A result sent back: by the reporter or a verifier at the callback (``reject_result``,
``reopen``), or by the reviewer before feedback (``send_back``)."""
CALLBACK_TRIGGERS = frozenset({"confirm", "reject_result", "reopen"})
"""The callbacks of the standard workflow: the reporter's (or a verifier's) answer,
closing the case or sending it back."""
HAPPENINGS: Mapping[str, str] = {
    "return": "return",
    "redispatch": "misdirect",
    "approve_extension": "extension",
    **dict.fromkeys(sorted(REWORK_TRIGGERS), "rework"),
}
"""Triggers counted where (and when) they happen, by the kind of happening."""
ARBITRATION_STATE = "arbitration"


class EventLike(Protocol):
    """What the metrics read of an audit event; :class:`~closedloop.AuditEvent` has it.

    Rows read straight from a database qualify too, as long as ``at`` is an aware
    datetime and ``payload`` and ``changes`` are decoded JSON.
    """

    @property
    def case_id(self) -> str:
        """The case the event belongs to."""
        ...

    @property
    def at(self) -> datetime:
        """When the event happened (timezone-aware)."""
        ...

    @property
    def trigger(self) -> str:
        """The trigger fired (``report`` for the first event)."""
        ...

    @property
    def to_state(self) -> str:
        """The state the case was in after the event."""
        ...

    @property
    def payload(self) -> Mapping[str, Any]:
        """The command's checked payload."""
        ...

    @property
    def changes(self) -> Mapping[str, Any]:
        """The case body fields the event changed, as JSON data."""
        ...


@dataclass(slots=True)
class Assignment:
    """One sign-for clock given to a unit: dispatch, approved return, or arbitration.

    ``ended`` is true when the assignment ended without being signed for because the
    case went to a new assignment or was withdrawn.
    """

    unit: str | None
    started: str
    due_at: datetime
    accepted_at: datetime | None = None
    ended: bool = False


@dataclass(slots=True)
class Handling:
    """The handling clock the case last ran under: its unit, start and due instant.

    While the clock is paused, ``due_at`` is the due instant as it stood when it
    paused (a pause moves it on only when the clock resumes).
    """

    unit: str | None
    started: str
    started_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Happening:
    """Something counted when it happens: a return, misdirect, rework, extension or
    arbitration, with the unit that held the case at the time."""

    kind: str
    at: datetime
    unit: str | None


@dataclass(frozen=True, slots=True)
class Callback:
    """A callback (回访): the reporter's answers, with the unit that held the case."""

    trigger: str
    at: datetime
    unit: str | None
    payload: Mapping[str, Any]


@dataclass(slots=True)
class SubtaskClock:
    """A co-unit's subtask clock: its unit, due instant and when it was done."""

    unit: str
    due_at: datetime
    done_at: datetime | None = None
    ended: bool = False
    """Dropped before it was done: the case went to a new assignment or ended."""


@dataclass(slots=True)
class CaseFacts:
    """What the metrics need to know of one case, as it stood just before ``as_of``.

    Grouping values (``channel``, ``category``, ``urgency``, ``area``, ``lead_unit``)
    are the case's latest. ``first_trigger`` and ``first_state`` hold when each trigger
    first fired and each state was first entered.
    """

    case_id: str
    as_of: datetime
    reported_at: datetime | None = None
    state: str = ""
    channel: str | None = None
    category: str | None = None
    urgency: str | None = None
    area: str | None = None
    lead_unit: str | None = None
    first_trigger: dict[str, datetime] = field(default_factory=dict)
    first_state: dict[str, datetime] = field(default_factory=dict)
    closed_at: datetime | None = None
    closing: Mapping[str, Any] = field(default_factory=dict)
    """The payload of the event that closed the case (holds the rating)."""
    closing_trigger: str | None = None
    """The trigger that closed the case (``confirm``, ``close_unconfirmed``)."""
    callbacks: list[Callback] = field(default_factory=list)
    """Every callback, in order: the one that closed the case and those that sent it back."""
    subtasks: dict[tuple[str, str], SubtaskClock] = field(default_factory=dict)
    """Co-units' subtask clocks, by unit and start: each start is a clock of its own."""
    handling: Handling | None = None
    assignments: list[Assignment] = field(default_factory=list)
    happenings: list[Happening] = field(default_factory=list)
    reworks: int = 0
    extensions: int = 0
    late_rounds: int = 0
    """Handling rounds that ended (the result submitted, or sent to rework) after their
    own due instant; a reworked case gets a new handling clock for its next round."""
    supervised: bool = False
    suspended: bool = False
    """The handling clock is paused by an approved suspension (挂账)."""
    clock: str | None = None
    warning: str = "none"
    due_at: datetime | None = None
    """The due instant of the running clock (``None`` once final)."""
    paused_at: datetime | None = None
    due_text: str | None = field(default=None, repr=False)
    """``due_at`` as the event wrote it, to parse it only when it changes."""

    @property
    def is_open(self) -> bool:
        """Whether the case has not reached a final state."""
        return self.state not in FINAL_STATES

    def overdue(self) -> bool:
        """Whether the running clock is past due at ``as_of``.

        A paused clock is overdue only if it was overdue when it paused, as the stores'
        ``find_cases(overdue_at=...)`` decides.
        """
        if self.due_at is None or self.due_at > self.as_of:
            return False
        return self.paused_at is None or self.due_at <= self.paused_at


def filed_at(facts: CaseFacts) -> datetime | None:
    """When the case was filed (立案), or ``None``: a duplicate merged into another case
    is not filed however far it got, so a report and its duplicates count once."""
    if facts.state == MERGED_STATE:
        return None
    return facts.first_state.get(FILED_STATE)


def summarize(
    events: Sequence[EventLike],
    *,
    as_of: datetime,
    callbacks: frozenset[str] = CALLBACK_TRIGGERS,
) -> CaseFacts | None:
    """Fold one case's events, oldest first, into its facts just before ``as_of``.

    ``callbacks`` names the triggers whose payloads are the reporter's answers.

    Returns:
        The facts, or ``None`` when the case was reported at or after ``as_of``.
    """
    if not events or events[0].at >= as_of:
        return None
    first = events[0]
    facts = CaseFacts(case_id=first.case_id, as_of=as_of, reported_at=first.at)
    for event in events:
        if event.at >= as_of:
            break
        _fold(facts, event)
        if event.trigger in callbacks:
            facts.callbacks.append(
                Callback(event.trigger, event.at, facts.lead_unit, event.payload)
            )
    return facts


def summarize_all(
    streams: Iterable[Sequence[EventLike]],
    *,
    as_of: datetime,
    callbacks: frozenset[str] = CALLBACK_TRIGGERS,
) -> Iterator[CaseFacts]:
    """:func:`summarize` for each case's events; cases not yet reported are skipped."""
    for events in streams:
        facts = summarize(events, as_of=as_of, callbacks=callbacks)
        if facts is not None:
            yield facts


def _fold(facts: CaseFacts, event: EventLike) -> None:
    # The hot loop of every metric: the common event touches two dicts and its changes.
    at, trigger, state = event.at, event.trigger, event.to_state
    facts.first_trigger.setdefault(trigger, at)
    facts.first_state.setdefault(state, at)
    if trigger in _COUNTED_TRIGGERS:
        _count_trigger(facts, trigger, at)
    if state != facts.state:
        _enter(facts, state, at, event.payload, trigger)
    changes = event.changes
    if changes:
        _apply_changes(facts, changes, at)


_COUNTED_TRIGGERS = frozenset({"accept", *HAPPENINGS})


def _count_trigger(facts: CaseFacts, trigger: str, at: datetime) -> None:
    kind = HAPPENINGS.get(trigger)
    if kind is not None:
        facts.happenings.append(Happening(kind, at, facts.lead_unit))
    if trigger == "accept":
        if facts.assignments and facts.assignments[-1].accepted_at is None:
            facts.assignments[-1].accepted_at = at
    elif trigger in REWORK_TRIGGERS:
        facts.reworks += 1
    elif trigger == "approve_extension":
        facts.extensions += 1


def _enter(
    facts: CaseFacts, state: str, at: datetime, payload: Mapping[str, Any], trigger: str
) -> None:
    if state == ARBITRATION_STATE:
        facts.happenings.append(Happening("arbitration", at, facts.lead_unit))
    elif state == CLOSED:
        facts.closed_at = at
        facts.closing = payload
        facts.closing_trigger = trigger
    if state in FINAL_STATES and facts.assignments:
        last = facts.assignments[-1]
        last.ended = last.ended or last.accepted_at is None
    if state in FINAL_STATES:
        for clock in facts.subtasks.values():
            clock.ended = clock.ended or clock.done_at is None
    facts.state = state


_PLAIN = frozenset({"channel", "category", "urgency", "lead_unit", "supervised"})


def _apply_changes(facts: CaseFacts, changes: Mapping[str, Any], at: datetime) -> None:
    for name in _PLAIN.intersection(changes):
        setattr(facts, name, changes[name])
    location = changes.get("location")
    if location is not None:
        facts.area = location.get("area")
    attributes = changes.get("attributes")
    if attributes is not None:
        facts.suspended = attributes.get("paused") == "suspension"
        if facts.subtasks or attributes.get("subtasks"):
            _apply_subtasks(facts, attributes.get("subtasks") or ())
    if "deadline" in changes:
        deadline = changes["deadline"]
        handling = facts.handling
        if facts.clock == HANDLING_CLOCK and handling is not None and at > handling.due_at:
            ends = deadline is None or deadline["started_at"] != handling.started
            facts.late_rounds += ends
        _apply_deadline(facts, deadline)


def _apply_deadline(facts: CaseFacts, deadline: Mapping[str, Any] | None) -> None:
    if deadline is None:
        facts.clock, facts.warning, facts.due_at, facts.paused_at = None, "none", None, None
        facts.due_text = None
        return
    clock, started, due_text = deadline["clock"], deadline["started_at"], deadline["due_at"]
    if due_text != facts.due_text or facts.due_at is None:  # warnings repeat the due instant
        facts.due_at, facts.due_text = _instant(due_text), due_text
    due_at = facts.due_at
    paused = deadline.get("paused_at")
    facts.clock, facts.warning = clock, deadline.get("warning", "none")
    facts.paused_at = None if paused is None else _instant(paused)
    if clock == HANDLING_CLOCK:
        handling = facts.handling
        if handling is None or handling.started != started:
            facts.handling = Handling(facts.lead_unit, started, _instant(started), due_at)
        else:
            handling.due_at = due_at
    elif clock == SIGN_FOR_CLOCK:
        _apply_sign_for(facts, started, due_at)
    beside = deadline.get("beside")
    if beside is not None and beside["clock"] == HANDLING_CLOCK:
        # The handling clock runs from the dispatch, beside the sign-for clock: a case
        # never signed for is due when that clock would have run out.
        handling, begun = facts.handling, beside["started_at"]
        if handling is None or handling.started != begun:
            facts.handling = Handling(
                facts.lead_unit, begun, _instant(begun), _instant(beside["due_at"])
            )
        else:  # counted again (a corrected calendar): the due instant it has now
            handling.due_at = _instant(beside["due_at"])


def _apply_sign_for(facts: CaseFacts, started: str, due_at: datetime) -> None:
    last = facts.assignments[-1] if facts.assignments else None
    if last is not None and last.started == started and last.unit == facts.lead_unit:
        last.due_at = due_at
        return
    if last is not None and last.accepted_at is None:
        last.ended = True
    facts.assignments.append(Assignment(facts.lead_unit, started, due_at))


def _apply_subtasks(facts: CaseFacts, tasks: Sequence[Mapping[str, Any]]) -> None:
    kept = {(t["unit"], t.get("activated_at")) for t in tasks}
    for key, known in facts.subtasks.items():
        known.ended = known.ended or (key not in kept and known.done_at is None)
    for task in tasks:
        due, started = task.get("due_at"), task.get("activated_at")
        if due is None or started is None:
            continue  # not started, or started before subtasks had clocks of their own
        key = (task["unit"], started)
        clock = facts.subtasks.get(key)
        if clock is None:
            clock = facts.subtasks[key] = SubtaskClock(task["unit"], _instant(due))
        done = task.get("done_at")
        if done is not None and clock.done_at is None:
            clock.done_at = _instant(done)


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
