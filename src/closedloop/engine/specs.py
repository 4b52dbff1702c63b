"""The parts of a workflow definition, as immutable data: roles, clocks, states,
transitions, notification rules, and :class:`WorkflowSpec` that holds them.

Nothing here knows guards, effects or validation; :class:`~closedloop.engine.definition.Workflow`
adds loading, validation and the registry on top of :class:`WorkflowSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from closedloop.engine.durations import NaturalDurationText

FieldType = Literal["text", "code", "int", "number", "bool", "choice", "codes", "datetime", "media"]
RoleKind = Literal["global", "reporter", "lead_unit", "co_unit"]


class _Definition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldSpec(_Definition):
    """A payload field a transition accepts.

    ``text`` is free text (normalised, length-limited); ``code`` a short identifier
    such as a category code or unit id; ``codes`` a list of those; ``choice`` one of
    ``choices``; ``media`` a list of references to photos or files kept elsewhere
    (see :class:`~closedloop.engine.model.MediaRef`).
    """

    type: FieldType = "text"
    required: bool = False
    required_channels: tuple[str, ...] = ()
    """The field is required on cases reported through these channels (``grid``)."""
    choices: tuple[str, ...] = ()
    max_length: int = Field(default=4000, ge=1, le=100_000)
    default: str | int | float | bool | None = None


class RoleSpec(_Definition):
    """A role named by transitions.

    ``global`` roles are held by actors (``Actor.roles``); the other kinds are
    relations to a case: its ``reporter``, a member of its ``lead_unit`` or of one of
    its ``co_unit``\\ s. ``sees_all`` lets holders of a global role see every case.
    """

    name: str = Field(min_length=1)
    kind: RoleKind = "global"
    sees_all: bool = False


class SlaRow(_Definition):
    """A limit for cases of a category (prefix: ``01`` covers ``01.02``) and urgency.

    The most specific matching row wins (longest category, then a stated urgency).
    """

    category: str | None = None
    urgency: str | None = None
    duration: str = Field(min_length=1)
    calendar: str | None = None


class EscalationStep(_Definition):
    """A rung of the escalation ladder, counted from the breach of the clock."""

    after: str = "0 hours"
    supervise: bool = False
    """Set the supervision flag (督办) on the case."""
    notify: tuple[str, ...] = ()
    """Who is told besides the ``escalate`` rules' recipients: recipients as in a
    notification rule's ``to`` (``supervising_unit``, ``parent_unit``, ``role:NAME``,
    ...), checked when the workflow loads."""


class ExpirySpec(_Definition):
    """A transition the engine fires as ``system`` when the clock has run out."""

    trigger: str = Field(min_length=1)
    after: str = "0 hours"
    reason: str = Field(min_length=1)


RouteAt = Literal["report", "dispatch"]
"""When the responsibility list routes a case: as of its report, or as of its dispatch."""


class ClockSpec(_Definition):
    """A named clock that runs while a case waits in a state.

    ``duration`` is the default limit; ``sla`` rows refine it by category and urgency.
    ``calendar`` names one of the engine's calendars (its default calendar if unset).
    A yellow warning falls at ``warn_at`` of the allowed time (limit plus approved
    extensions); breach is red; then the ``escalation`` ladder; then ``on_expiry``.
    ``starts`` names the transition whose firing starts the clock (see the field).
    """

    name: str = Field(min_length=1)
    duration: str = Field(min_length=1)
    calendar: str | None = None
    sla: tuple[SlaRow, ...] = ()
    warn_at: float = Field(default=0.7, gt=0, lt=1)
    escalation: tuple[EscalationStep, ...] = ()
    on_expiry: ExpirySpec | None = None
    starts: str | None = None
    """The transition whose firing starts this clock. Unset, or a transition into the
    clock's own state (``accept`` for handling), the clock starts when the case enters
    its state. A transition into an earlier state (``dispatch``, into ``assigned``)
    makes the clock count from when the case entered that state, whose own clock (the
    sign-for clock) runs beside it, provided the case comes straight from there;
    entered any other way (a rework), it starts on entry."""


class StateSpec(_Definition):
    """A state. Every non-final state names the clock that runs in it and its owner."""

    name: str = Field(min_length=1)
    initial: bool = False
    final: bool = False
    clock: str | None = None
    owner: str | None = None
    description: str = ""


class RoleRule(_Definition):
    """A rule on who may fire a transition; a rule is of one of two kinds.

    A counter rule (``counter``, ``at_least``, ``roles``): once the case's counter has
    reached ``at_least``, only ``roles`` may fire the transition (a second extension:
    supervisor). A conflict-of-interest rule (``not_party: true``): an actor who is a
    member of the case's lead unit or of one of its co-units may not fire it through
    ``roles`` (through any role when ``roles`` is empty), whatever else they hold.
    """

    counter: str | None = None
    at_least: int | None = Field(default=None, ge=1)
    roles: tuple[str, ...] = ()
    not_party: bool = False


class Divert(_Definition):
    """Another destination, taken when its condition holds (checked in order).

    The condition is a named ``guard`` that passes, or a ``counter`` of the case that
    has reached ``at_least`` once this transition's ``counts`` are applied.
    """

    to: str = Field(min_length=1)
    guard: str | None = None
    counter: str | None = None
    at_least: int | None = Field(default=None, ge=1)


class TransitionSpec(_Definition):
    """A named transition (the trigger) from one or more states to one state."""

    name: str = Field(min_length=1)
    source: tuple[str, ...] = Field(alias="from", min_length=1)
    dest: str = Field(alias="to", min_length=1)
    roles: tuple[str, ...] = Field(min_length=1)
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    """The payload's fields by name; ``by``, ``expected_version``, ``idempotency_key`` and
    ``self`` are arguments of ``Engine.trigger``, no field names (``case_id`` and
    ``name`` may be)."""
    sets: dict[str, str] = Field(default_factory=dict)
    """Case attribute to set ← payload field supplying the value."""
    marks: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    """Attributes set to fixed values (``None`` clears one)."""
    counts: tuple[str, ...] = ()
    """Case counters this transition increments."""
    guards: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()
    role_rules: tuple[RoleRule, ...] = ()
    """When a rule's counter has reached ``at_least``, only its roles may fire this."""
    restores_clock: bool = False
    """Resume the clock the case had before its last change of state (a rejected
    return goes back to the same unit with its sign-for clock still running)."""
    divert: tuple[Divert, ...] = ()
    """Destinations other than ``to``, each with the condition that selects it."""
    extends_clock: str | None = None
    """An attribute path (``extension_request.duration``) whose duration this
    transition adds to the running clock."""
    merges_into: str | None = None
    """The payload field (a code) naming the case this one duplicates: the engine
    refuses a target that does not exist, is the case itself, is final or is itself
    merged, sets ``merged_into``, and records the duplicate on the target."""
    description: str = ""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class TemplateSpec(_Definition):
    """The words of a notification, as ``string.Template`` text (``${case_id}``)."""

    subject: str = Field(min_length=1)
    body: str = Field(min_length=1)
    format: Literal["text", "html"] = "text"


class NotificationRule(_Definition):
    """On these ``events``, tell these recipients through ``channel`` with ``template``.

    (The key is not ``on``: YAML 1.1 reads a bare ``on`` as the boolean true.)
    """

    events: tuple[str, ...] = Field(min_length=1)
    to: tuple[str, ...] = Field(min_length=1)
    """``lead_unit``, ``co_units``, ``supervising_unit``, ``parent_unit``,
    ``subtask_unit``, ``reporter`` or ``role:NAME`` (a declared role)."""
    channel: str = Field(min_length=1)
    template: str = Field(min_length=1)


class PrivacySpec(_Definition):
    """Who sees a reporter's contact data in full; everyone else sees it masked.

    When ``full_contact`` is not given: the reporter, members of the lead unit and a
    global ``dispatcher`` role if the workflow declares one. ``force_erase`` names the
    roles that may erase a reporter's data while a case of theirs is still open
    (``Engine.erase_subject(..., force=True)``); nobody may when it is empty.
    """

    full_contact: tuple[str, ...] | None = None
    """The roles that see a reporter's contact data unmasked."""
    force_erase: tuple[str, ...] = ()
    """The roles that may erase a reporter's data while a case of theirs is open."""


PersonalKind = Literal["contact", "description", "location", "media", "inputs"]
RetentionStart = Literal["closed", "reported"]


class RetentionRule(_Definition):
    """How long a kind of personal data is kept: ``data`` is erased ``after`` this long
    from the case's close (its last change once final) or its report (``from``).

    ``channels`` and ``categories`` narrow the rule to cases reported through one of
    those channels or classified under one of those categories (any, when empty).
    ``name`` is what the ``purged`` event records; ``retention[<index>]`` by default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    data: tuple[PersonalKind, ...] = Field(min_length=1)
    """The kinds of personal data the rule erases."""
    after: NaturalDurationText
    """How long they are kept, in natural time (``180 days``)."""
    start: RetentionStart = Field(default="closed", alias="from")
    """What the time counts from: the case's close (``closed``, a final case's last
    change) or its report (``reported``)."""
    channels: tuple[str, ...] = ()
    """Only cases reported through one of these channels (any, when empty)."""
    categories: tuple[str, ...] = ()
    """Only cases of these categories or their subcategories (any, when empty)."""
    name: str | None = None
    """What the ``purged`` event names the rule by; ``retention[<index>]`` by default."""


class WorkflowSpec(_Definition):
    """The data of a workflow definition and its lookups; see :class:`Workflow`."""

    name: str = Field(min_length=1)
    version: str = "1"
    description: str = ""
    roles: tuple[RoleSpec, ...]
    clocks: tuple[ClockSpec, ...]
    states: tuple[StateSpec, ...]
    transitions: tuple[TransitionSpec, ...]
    privacy: PrivacySpec = PrivacySpec()
    retention: tuple[RetentionRule, ...] | None = None
    """How long personal data is kept. A workflow that has this section (even empty)
    seals the personal fields of its audit events, so that they can be purged."""
    notifications: tuple[NotificationRule, ...] = ()
    templates: dict[str, TemplateSpec] = Field(default_factory=dict)
    route_at: RouteAt = "report"
    """Which instant the responsibility list is asked at when a case is routed: the
    report's (the list in force when the citizen reported) or the dispatch's."""

    # -- lookups -------------------------------------------------------------------------

    @cached_property
    def initial(self) -> StateSpec:
        """The initial state."""
        return next(s for s in self.states if s.initial)

    def state(self, name: str) -> StateSpec:
        """The state called ``name`` (KeyError if undeclared)."""
        return self._states[name]

    def transition(self, name: str) -> TransitionSpec:
        """The transition called ``name`` (KeyError if undeclared)."""
        return self._transitions[name]

    def role(self, name: str) -> RoleSpec:
        """The role called ``name`` (KeyError if undeclared)."""
        return self._roles[name]

    def clock(self, name: str) -> ClockSpec:
        """The clock called ``name`` (KeyError if undeclared)."""
        return self._clocks[name]

    def destinations(self, transition: TransitionSpec) -> tuple[str, ...]:
        """Every state ``transition`` may lead to: ``to`` first, then its diversions."""
        return (transition.dest, *(d.to for d in transition.divert))

    @cached_property
    def full_contact_roles(self) -> frozenset[str]:
        """The roles that see a reporter's contact data unmasked."""
        if self.privacy.full_contact is not None:
            return frozenset(self.privacy.full_contact)
        return frozenset(
            r.name
            for r in self.roles
            if r.kind in ("reporter", "lead_unit") or (r.kind, r.name) == ("global", "dispatcher")
        )

    def roles_for(self, transition: TransitionSpec, counters: Mapping[str, int]) -> tuple[str, ...]:
        """The roles that may fire ``transition`` on a case with these counters."""
        roles = transition.roles
        for rule in transition.role_rules:
            if rule.not_party or rule.counter is None or rule.at_least is None:
                continue
            if counters.get(rule.counter, 0) >= rule.at_least:
                roles = rule.roles
        return roles

    def barred_to_parties(self, transition: TransitionSpec) -> frozenset[str]:
        """The roles through which a party to the case (a member of its lead unit or a
        co-unit) may not fire ``transition``, by its ``not_party`` rules."""
        barred: set[str] = set()
        for rule in transition.role_rules:
            if rule.not_party:
                barred.update(rule.roles or self.roles_named(transition))
        return frozenset(barred)

    def roles_named(self, transition: TransitionSpec) -> tuple[str, ...]:
        """Every role that may fire ``transition`` on some case: its own, then those of
        its counter rules."""
        named = list(transition.roles)
        for rule in transition.role_rules:
            if not rule.not_party:
                named += [r for r in rule.roles if r not in named]
        return tuple(named)

    def transitions_from(self, state: str) -> tuple[TransitionSpec, ...]:
        """The transitions whose sources include ``state``, in declaration order."""
        return tuple(t for t in self.transitions if state in t.source)

    def notifications_on(self, event: str) -> tuple[tuple[int, NotificationRule], ...]:
        """The notification rules for ``event``, each with its position, in order."""
        return self._notifications_on.get(event, ())

    @cached_property
    def _notifications_on(self) -> dict[str, tuple[tuple[int, NotificationRule], ...]]:
        found: dict[str, list[tuple[int, NotificationRule]]] = {}
        for index, rule in enumerate(self.notifications):
            for event in dict.fromkeys(rule.events):
                found.setdefault(event, []).append((index, rule))
        return {event: tuple(rules) for event, rules in found.items()}

    @cached_property
    def _states(self) -> dict[str, StateSpec]:
        return {s.name: s for s in self.states}

    @cached_property
    def _transitions(self) -> dict[str, TransitionSpec]:
        return {t.name: t for t in self.transitions}

    @cached_property
    def _roles(self) -> dict[str, RoleSpec]:
        return {r.name: r for r in self.roles}

    @cached_property
    def role_names(self) -> dict[RoleKind, frozenset[str]]:
        """The names of the roles of each kind."""
        names: dict[RoleKind, set[str]] = {kind: set() for kind in get_args(RoleKind)}
        for role in self.roles:
            names[role.kind].add(role.name)
        return {kind: frozenset(found) for kind, found in names.items()}

    @cached_property
    def _clocks(self) -> dict[str, ClockSpec]:
        return {c.name: c for c in self.clocks}
