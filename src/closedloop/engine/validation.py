"""Eager validation of workflow definitions: a definition that loads is a closed loop.

:func:`check_workflow` returns every problem it finds, each with its path, so that
:class:`~closedloop.errors.InvalidWorkflow` can list them all at once.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator

from closedloop.engine.durations import Duration
from closedloop.engine.hierarchy import is_code
from closedloop.engine.kinds import EngineTrigger
from closedloop.engine.model import Case
from closedloop.engine.notification_rules import rule_problems
from closedloop.engine.registry import Registry
from closedloop.engine.specs import (
    Divert,
    EscalationStep,
    FieldSpec,
    RoleRule,
    TransitionSpec,
    WorkflowSpec,
)
from closedloop.errors import ValidationError

NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""A name of a state, transition, role, clock, field or counter (``fullmatch`` it)."""
RESERVED_TRIGGERS = frozenset(trigger.value for trigger in EngineTrigger)
"""Trigger names the engine records itself: a case's first event, and its timers."""
SETTABLE_FIELDS = frozenset(
    {
        "category", "urgency", "lead_unit", "co_units", "paused", "dispatched_by",
        "subtasks", "routing", "misdirects", "final_assignment", "extension_request",
        "suspension_request", "supervised",
    }
)  # fmt: skip
"""Case fields a transition may set; any other target is kept in ``Case.attributes``."""
RECORDS = frozenset(
    {"subtasks", "routing", "misdirects", "extension_request", "suspension_request"}
)
"""Settable case fields holding records that only effects make; ``marks`` may clear them."""
FLAGS = frozenset({"final_assignment"})
"""Settable case fields that ``marks`` sets to ``true`` or clears with ``null``."""
TEXT_TYPES = frozenset({"code", "choice", "text"})
RESERVED_FIELDS = frozenset({"by", "expected_version", "idempotency_key", "self"})
"""Field names that would collide with the arguments of ``Engine.trigger``: its keyword
arguments, and ``self``, which Python binds by name too. ``case_id`` and ``name`` are
positional only, so a payload may hold keys of those names (``Engine.report`` takes no
payload, so it reserves nothing)."""
EFFECT_NEEDS: dict[str, tuple[str, ...]] = {
    "route": ("routable",),
    "complete_subtask": ("has_active_subtask",),
}
"""Built-in effects that rely on a guard having run on the same transition."""
UNIT_GUARDS = ("known_units", "another_unit")
"""The built-in guards that check the units a payload names against the directory: an
effect that assigns the named unit needs one of them."""


def check_workflow(workflow: WorkflowSpec, registry: Registry) -> list[str]:
    """Every problem of ``workflow``, each prefixed with its path; empty when valid."""
    problems: list[str] = []
    problems += _duplicates(workflow)
    problems += _states(workflow)
    problems += _clocks(workflow)
    for index, transition in enumerate(workflow.transitions):
        where = f"transitions[{index}] ({transition.name})"
        problems += _transition(workflow, registry, transition, where)
    for index, role in enumerate(workflow.privacy.full_contact or ()):
        if role not in _names(workflow.roles):
            problems.append(f"privacy.full_contact[{index}]: unknown role {role!r}")
    for index, role in enumerate(workflow.privacy.force_erase):
        if role not in _names(workflow.roles):
            problems.append(f"privacy.force_erase[{index}]: unknown role {role!r}")
    problems += _retention(workflow)
    problems += rule_problems(workflow)
    if not problems:  # graph checks need a structurally sound definition
        problems += _graph(workflow)
    return problems


def _retention(workflow: WorkflowSpec) -> Iterator[str]:
    seen: set[str] = set()
    for index, rule in enumerate(workflow.retention or ()):
        where = f"retention[{index}]"
        if rule.after.working:
            yield f"{where}.after: is counted in natural time; write days, not working days"
        if rule.after.amount <= 0:
            yield f"{where}.after: must be longer than zero"
        name = rule.name or where
        if name in seen:
            yield f"{where}.name: {name!r} is used by another rule"
        seen.add(name)


def _names(items: Iterable[object]) -> set[str]:
    return {getattr(item, "name") for item in items}  # noqa: B009 - any named spec


def _duplicates(workflow: WorkflowSpec) -> Iterator[str]:
    for section in ("states", "transitions", "roles", "clocks"):
        items = getattr(workflow, section)
        for index, item in enumerate(items):
            if not NAME.fullmatch(item.name):
                yield (
                    f"{section}[{index}].name: {item.name!r} is not a valid name; use "
                    "lowercase letters, digits and '_', starting with a letter"
                )
        counts = Counter(item.name for item in items)
        for name, count in counts.items():
            if count > 1:
                yield f"{section}: duplicate name {name!r} ({count} times)"


def _states(workflow: WorkflowSpec) -> Iterator[str]:
    initial = [s.name for s in workflow.states if s.initial]
    if len(initial) != 1:
        yield f"states: exactly one initial state is required, found {len(initial)}: {initial}"
    if not any(s.final for s in workflow.states):
        yield "states: at least one final state is required"
    roles, clocks = _names(workflow.roles), _names(workflow.clocks)
    for index, state in enumerate(workflow.states):
        where = f"states[{index}] ({state.name})"
        if state.final:
            if state.initial:
                yield f"{where}: a final state cannot be the initial state"
            if state.clock or state.owner:
                yield f"{where}: a final state has no clock and no owner"
            if workflow.transitions_from(state.name):
                yield f"{where}: a final state cannot have outgoing transitions"
            continue
        if state.clock is None:
            yield f"{where}.clock: a waiting state must name the clock that runs in it"
        elif state.clock not in clocks:
            yield f"{where}.clock: unknown clock {state.clock!r}; declared: {sorted(clocks)}"
        if state.owner is None:
            yield f"{where}.owner: a waiting state must name the role that acts next"
        elif state.owner not in roles:
            yield f"{where}.owner: unknown role {state.owner!r}; declared: {sorted(roles)}"


def _clocks(workflow: WorkflowSpec) -> Iterator[str]:
    for index, clock in enumerate(workflow.clocks):
        where = f"clocks[{index}] ({clock.name})"
        texts = [("duration", clock.duration)]
        texts += [(f"sla[{i}].duration", row.duration) for i, row in enumerate(clock.sla)]
        texts += [(f"escalation[{i}].after", step.after) for i, step in enumerate(clock.escalation)]
        if clock.on_expiry:
            texts.append(("on_expiry.after", clock.on_expiry.after))
            yield from _expiry(workflow, clock.name, clock.on_expiry.trigger, f"{where}.on_expiry")
        if clock.starts is not None and clock.starts not in _names(workflow.transitions):
            yield f"{where}.starts: unknown transition {clock.starts!r}"
        for path, text in texts:
            try:
                Duration.parse(text)
            except ValidationError as exc:
                yield f"{where}.{path}: {exc.errors[0][1]}"
        yield from _ladder(clock.escalation, where)


def _ladder(steps: Iterable[EscalationStep], where: str) -> Iterator[str]:
    """Escalation steps out of order: the ladder is climbed one rung at a time, so a
    step listed after a later one would fire only once that one has."""
    previous: tuple[int, str, Duration] | None = None
    for index, step in enumerate(steps):
        try:
            after = Duration.parse(step.after)
        except ValidationError:
            previous = None  # reported above
            continue
        if previous is not None and earlier(after, previous[2]):
            yield (
                f"{where}.escalation[{index}].after: {step.after!r} comes before the step "
                f"listed above it (escalation[{previous[0]}].after: {previous[1]!r}); the "
                "steps are climbed in the order listed, so list them from the earliest"
            )
        previous = (index, step.after, after)


def earlier(one: Duration, other: Duration) -> bool:
    """Whether ``one`` is surely shorter than ``other``: zero is shorter than any
    length; natural lengths compare in time; working lengths compare in the same unit
    (how many working hours a working day holds is the calendar's)."""
    if one.amount == 0 or other.amount == 0:
        return one.amount < other.amount
    if not one.working and not other.working:
        return one.as_timedelta() < other.as_timedelta()
    if one.working and other.working and one.unit == other.unit:
        return one.amount < other.amount
    return False


def _expiry(workflow: WorkflowSpec, clock: str, trigger: str, where: str) -> Iterator[str]:
    transition = next((t for t in workflow.transitions if t.name == trigger), None)
    if transition is None:
        yield f"{where}.trigger: unknown transition {trigger!r}"
        return
    system = [r.name for r in workflow.roles if r.name == "system" and r.kind == "global"]
    if not system or "system" not in transition.roles:
        yield f"{where}.trigger: {trigger!r} must be fireable by the global role 'system'"
    reason = transition.fields.get("reason")
    if reason is None or reason.type != "text":
        yield f"{where}.trigger: {trigger!r} must take a text field 'reason' (why it fired)"
    waiting = {s.name for s in workflow.states if s.clock == clock}
    if not waiting <= set(transition.source):
        yield f"{where}.trigger: {trigger!r} must leave every state timed by {clock!r}"


def _transition(
    workflow: WorkflowSpec, registry: Registry, transition: TransitionSpec, where: str
) -> Iterator[str]:
    states, roles = _names(workflow.states), _names(workflow.roles)
    if transition.name in RESERVED_TRIGGERS:
        yield f"{where}.name: {transition.name!r} is reserved for the engine"
    for index, source in enumerate(transition.source):
        if source not in states:
            yield f"{where}.from[{index}]: unknown state {source!r}; declared: {sorted(states)}"
    if transition.dest not in states:
        yield f"{where}.to: unknown state {transition.dest!r}; declared: {sorted(states)}"
    for index, divert in enumerate(transition.divert):
        yield from _divert(divert, registry, states, f"{where}.divert[{index}]")
    for index, role in enumerate(transition.roles):
        if role not in roles:
            yield f"{where}.roles[{index}]: unknown role {role!r}; declared: {sorted(roles)}"
    for kind, names, known in (
        ("guards", transition.guards, registry.guards),
        ("effects", transition.effects, registry.effects),
    ):
        for index, name in enumerate(names):
            if name not in known:
                yield (
                    f"{where}.{kind}[{index}]: unknown {kind[:-1]} {name!r}; "
                    f"registered: {sorted(known)}"
                )
    for index, rule in enumerate(transition.role_rules):
        for role in rule.roles:
            if role not in roles:
                yield (
                    f"{where}.role_rules[{index}]: unknown role {role!r}; declared: {sorted(roles)}"
                )
        yield from _role_rule(workflow, transition, rule, f"{where}.role_rules[{index}]")
    if transition.extends_clock is not None and not all(
        NAME.fullmatch(part) for part in transition.extends_clock.split(".")
    ):
        yield f"{where}.extends_clock: {transition.extends_clock!r} is not an attribute path"
    for name, spec in transition.fields.items():
        yield from _field(f"{where}.fields.{name}", name, spec)
    yield from _targets(transition, where)
    if transition.merges_into is not None:
        yield from _merge(workflow, transition, transition.merges_into, f"{where}.merges_into")


def _merge(
    workflow: WorkflowSpec, transition: TransitionSpec, field: str, where: str
) -> Iterator[str]:
    spec = transition.fields.get(field)
    if spec is None or spec.type != "code" or not spec.required:
        yield f"{where}: {field!r} must be a required code field of this transition"
    finals = {s.name for s in workflow.states if s.final}
    if transition.dest not in finals or transition.divert:
        yield f"{where}: a merge must lead to a final state alone (the duplicate waits no more)"


PARTY_KINDS = frozenset({"lead_unit", "co_unit"})
"""Role kinds held only by parties to a case: a ``not_party`` rule would bar them always."""


def _role_rule(
    workflow: WorkflowSpec, transition: TransitionSpec, rule: RoleRule, where: str
) -> Iterator[str]:
    if not rule.not_party:
        if rule.counter is None or rule.at_least is None or not rule.roles:
            yield f"{where}: give counter, at_least and roles, or not_party: true"
        return
    if rule.counter is not None or rule.at_least is not None:
        yield f"{where}: a not_party rule takes no counter or at_least; write two rules"
    named = workflow.roles_named(transition)
    declared = {r.name: r.kind for r in workflow.roles}
    for role in rule.roles or named:
        if role in declared and role not in named:
            yield f"{where}: not_party bars {role!r}, which cannot fire {transition.name!r}"
        elif declared.get(role) in PARTY_KINDS:
            yield (
                f"{where}: not_party bars {role!r}, a role only parties to the case hold, "
                f"so nobody could ever fire {transition.name!r} as {role!r}"
            )


def _divert(divert: Divert, registry: Registry, states: set[str], where: str) -> Iterator[str]:
    if divert.to not in states:
        yield f"{where}.to: unknown state {divert.to!r}; declared: {sorted(states)}"
    by_guard = divert.guard is not None
    by_counter = divert.counter is not None and divert.at_least is not None
    if by_guard == by_counter or (divert.counter is None) != (divert.at_least is None):
        yield f"{where}: give either a guard, or a counter with at_least"
    if divert.guard is not None and divert.guard not in registry.guards:
        known = sorted(registry.guards)
        yield f"{where}.guard: unknown guard {divert.guard!r}; registered: {known}"


def _field(where: str, name: str, spec: FieldSpec) -> Iterator[str]:
    if not NAME.fullmatch(name):
        yield f"{where}: {name!r} is not a valid field name"
    if name in RESERVED_FIELDS:
        yield f"{where}: {name!r} is an argument of Engine.trigger; name the field otherwise"
    if spec.type == "choice" and not spec.choices:
        yield f"{where}.choices: a choice field needs at least one choice"
    if spec.type != "choice" and spec.choices:
        yield f"{where}.choices: only choice fields take choices"
    if spec.default is not None and spec.type == "choice" and spec.default not in spec.choices:
        yield f"{where}.default: {spec.default!r} is not one of {list(spec.choices)}"
    if spec.required and spec.default is not None:
        yield f"{where}: a required field cannot have a default"
    if spec.required and spec.required_channels:
        yield f"{where}.required_channels: the field is required on every channel already"
    for index, channel in enumerate(spec.required_channels):
        if not is_code(channel):
            yield f"{where}.required_channels[{index}]: {channel!r} is not a channel code"


def _targets(transition: TransitionSpec, where: str) -> Iterator[str]:
    reserved = set(Case.model_fields) - SETTABLE_FIELDS
    for section, targets in (("sets", transition.sets), ("marks", transition.marks)):
        for target in targets:
            if target in reserved:
                yield (
                    f"{where}.{section}.{target}: case field {target!r} cannot be set by a "
                    f"transition; settable: {sorted(SETTABLE_FIELDS)} or any other name"
                )
            elif not NAME.fullmatch(target):
                yield f"{where}.{section}.{target}: {target!r} is not a valid name"
    for target, field in transition.sets.items():
        spec = transition.fields.get(field)
        if target in RECORDS or target in FLAGS:
            yield f"{where}.sets.{target}: case field {target!r} is made by effects, not fields"
            continue
        wanted = {"codes"} if target == "co_units" else TEXT_TYPES
        if target in SETTABLE_FIELDS and spec is not None and spec.type not in wanted:
            yield f"{where}.sets.{target}: needs a field of type {sorted(wanted)}, not {spec.type}"
        if field not in transition.fields:
            yield (
                f"{where}.sets.{target}: field {field!r} is not a field of this transition; "
                f"fields: {sorted(transition.fields)}"
            )
    for target, value in transition.marks.items():
        if target in FLAGS:
            if value not in (True, None):
                yield f"{where}.marks.{target}: case field {target!r} takes only true or null"
            continue
        if (
            target in SETTABLE_FIELDS
            and value is not None
            and (target == "co_units" or target in RECORDS or not isinstance(value, str))
        ):
            shape = "only null" if target in RECORDS else "only text or null"
            yield f"{where}.marks.{target}: case field {target!r} takes {shape}"
    for name in transition.effects:
        for guard in EFFECT_NEEDS.get(name, ()):
            if guard not in transition.guards:
                yield f"{where}.effects: {name!r} needs the guard {guard!r} on the same transition"
    if "assign_named_unit" in transition.effects and not (
        "unit" in transition.fields and transition.fields["unit"].required
    ):
        yield f"{where}.effects: 'assign_named_unit' needs a required field 'unit'"
    if "assign_named_unit" in transition.effects and not set(UNIT_GUARDS) & set(transition.guards):
        yield (
            f"{where}.effects: 'assign_named_unit' needs one of the guards "
            f"{', '.join(map(repr, UNIT_GUARDS))} on the same transition (they refuse a unit "
            "the directory does not know)"
        )
    for index, counter in enumerate(transition.counts):
        if not NAME.fullmatch(counter):
            yield f"{where}.counts[{index}]: {counter!r} is not a valid counter name"


def _graph(workflow: WorkflowSpec) -> Iterator[str]:
    forward: dict[str, set[str]] = {s.name: set() for s in workflow.states}
    backward: dict[str, set[str]] = {s.name: set() for s in workflow.states}
    for transition in workflow.transitions:
        for source in transition.source:
            for dest in workflow.destinations(transition):
                forward[source].add(dest)
                backward[dest].add(source)
    reachable = _closure([workflow.initial.name], forward)
    finishing = _closure([s.name for s in workflow.states if s.final], backward)
    for index, state in enumerate(workflow.states):
        where = f"states[{index}] ({state.name})"
        if state.name not in reachable:
            yield f"{where}: unreachable from the initial state {workflow.initial.name!r}"
        if not state.final and state.name not in finishing:
            yield f"{where}: cannot reach any final state (a trap: cases would never close)"
        if not state.final and state.owner and not _owner_can_act(workflow, state.name):
            yield (
                f"{where}.owner: the case waits on {state.owner!r}, but no transition out of "
                f"{state.name!r} may be fired by {state.owner!r}"
            )


def _owner_can_act(workflow: WorkflowSpec, state: str) -> bool:
    owner = workflow.state(state).owner
    return any(owner in t.roles for t in workflow.transitions_from(state))


def _closure(start: Iterable[str], edges: dict[str, set[str]]) -> set[str]:
    seen = set(start)
    queue = deque(seen)
    while queue:
        for nxt in edges[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
