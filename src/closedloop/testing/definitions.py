"""Random VALID workflow definitions: :func:`workflows`.

Every definition drawn is a closed loop by construction: each waiting state is
reachable from the initial state, can reach a final state, names a clock and an owner
who may act, and has a way out that no guard blocks and that an actor who can see
every case may take. Around that skeleton the strategy adds what makes the engine
work hard: relative roles (reporter, lead unit, co-unit), clocks with warnings, SLA
rows, escalation ladders and expiry actions, guards from the built-in registry,
diversions by guard or counter, counters with stricter roles, clocks that pause, are
extended or resume, and payload fields of every type, some written to the case.

Requires ``hypothesis`` (in the ``dev`` extra).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cmp_to_key
from typing import Any, TypeVar

from hypothesis import strategies as st

from closedloop.engine.definition import Workflow
from closedloop.engine.durations import Duration
from closedloop.engine.registry import Registry
from closedloop.engine.validation import earlier

GLOBAL_ROLES: tuple[str, ...] = ("clerk", "officer", "chief", "auditor")
"""Names of the global roles a generated workflow may declare (besides ``system``)."""
RELATIVE_ROLES: dict[str, str] = {
    "reporter": "reporter",
    "assignee": "lead_unit",
    "helper": "co_unit",
}
"""Relative roles a generated workflow may declare, by name: their kind."""
URGENCIES: tuple[str, ...] = ("normal", "urgent")
UNITS_OF_TIME: tuple[str, ...] = ("minutes", "hours", "days", "working hours", "working days")
FIELD_TYPES: tuple[str, ...] = (
    "text",
    "code",
    "codes",
    "choice",
    "bool",
    "int",
    "number",
    "datetime",
)
_DEFAULTS: dict[str, Any] = {"text": "n/a", "code": "x1", "choice": "normal", "bool": False}
_DEFAULTS.update({"int": 0, "number": 1.5})
_SETTABLE: dict[str, tuple[str, ...]] = {
    "code": ("category", "lead_unit"),
    "choice": ("urgency",),
    "codes": ("co_units",),
}
"""Case fields a payload field of each type may set (any type may set an attribute)."""

_MARKS: tuple[Any, ...] = (None, True, False, 0, 3, "done")

Definition = dict[str, Any]


def _one(draw: st.DrawFn, items: Sequence[Any]) -> Any:
    """One of ``items`` (drawn as an index: cheap, and it shrinks towards the first)."""
    return items[draw(st.integers(0, len(items) - 1))]


def _some(
    draw: st.DrawFn,
    items: Sequence[Any],
    *,
    min_size: int = 0,
    max_size: int | None = None,
    unique: bool = False,
) -> list[Any]:
    """Some of ``items``, in the order drawn."""
    indexes = st.integers(0, len(items) - 1)
    limit = len(items) if unique and max_size is None else max_size
    drawn = draw(st.lists(indexes, min_size=min_size, max_size=limit, unique=unique))
    return [items[i] for i in drawn]


def workflows(*, as_dict: bool = False, max_waiting_states: int = 5) -> st.SearchStrategy[Any]:
    """Random valid workflow definitions.

    Args:
        as_dict: Draw the definitions as plain data (what ``Workflow.from_dict``
            takes) instead of loaded :class:`~closedloop.engine.definition.Workflow`\\ s.
        max_waiting_states: At most this many non-final states (at least one).

    Guards and effects come from the built-in registry, so the definitions load with
    ``Workflow.from_dict(data)`` as they are.
    """
    data = _definitions(max(1, max_waiting_states))
    return data if as_dict else data.map(Workflow.from_dict)


@st.composite
def _definitions(draw: st.DrawFn, max_waiting: int) -> Definition:
    roles = draw(_roles())
    clocks = draw(st.lists(_clock(), min_size=1, max_size=3))
    for index, clock in enumerate(clocks):
        clock["name"] = f"clock_{index}"
    waiting = [f"wait_{i}" for i in range(draw(st.integers(1, max_waiting)))]
    finals = ["closed", "dropped"][: draw(st.integers(1, 2))]
    owners = [r["name"] for r in roles]
    states: list[dict[str, Any]] = [
        {
            "name": name,
            "initial": index == 0,
            "owner": _one(draw, owners),
            "clock": _one(draw, [c["name"] for c in clocks]),
        }
        for index, name in enumerate(waiting)
    ]
    states += [{"name": name, "final": True} for name in finals]
    build = _Builder(draw, roles, states)
    build.skeleton(waiting, finals)
    build.extras(waiting, finals)
    build.expiries(clocks, waiting, finals)
    definition: Definition = {
        "name": _one(draw, ["potholes", "noise", "permits", "graffiti"]),
        "version": str(draw(st.integers(1, 9))),
        "roles": roles,
        "clocks": clocks,
        "states": states,
        "transitions": build.transitions,
    }
    if draw(st.booleans()):
        names = [r["name"] for r in roles]
        definition["privacy"] = {"full_contact": _some(draw, names, unique=True)}
    return definition


@st.composite
def _roles(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = _some(draw, GLOBAL_ROLES, min_size=1, max_size=3, unique=True)
    # The first global role sees every case, so someone can always act.
    roles = [
        {"name": name, "kind": "global", "sees_all": index == 0 or draw(st.booleans())}
        for index, name in enumerate(names)
    ]
    relative = _some(draw, sorted(RELATIVE_ROLES), unique=True)
    roles += [{"name": name, "kind": RELATIVE_ROLES[name]} for name in relative]
    return roles


def durations(*, zero: bool = False) -> st.SearchStrategy[str]:
    """Duration texts such as ``"3 working hours"`` (``"0 hours"`` too when ``zero``)."""
    amounts = st.integers(0 if zero else 1, 12)
    return st.builds(lambda n, unit: f"{n} {unit}", amounts, st.sampled_from(UNITS_OF_TIME))


def _rungs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"after": durations(zero=True)},
        optional={"supervise": st.booleans(), "notify": st.just(("lead_unit",)).map(list)},
    )


_RUNGS = _rungs()

Rung = TypeVar("Rung")


def in_climbing_order(rungs: Sequence[Rung], after: Callable[[Rung], str]) -> list[Rung]:
    """Escalation rungs (or their ``after`` texts) listed from the earliest, as the
    loader wants them; rungs whose lengths do not compare keep their order."""

    def order(one: Rung, other: Rung) -> int:
        mine, theirs = Duration.parse(after(one)), Duration.parse(after(other))
        return -1 if earlier(mine, theirs) else 1 if earlier(theirs, mine) else 0

    return sorted(rungs, key=cmp_to_key(order))


@st.composite
def _clock(draw: st.DrawFn) -> dict[str, Any]:
    clock: dict[str, Any] = {"name": "", "duration": draw(durations())}
    if draw(st.booleans()):
        clock["warn_at"] = _one(draw, [0.25, 0.5, 0.7, 0.9])
    if draw(st.booleans()):
        rows = [{"urgency": "urgent", "duration": draw(durations())}]
        rows += [{"category": "x1", "duration": draw(durations())}] * draw(st.integers(0, 1))
        clock["sla"] = rows
    rungs = draw(st.lists(_RUNGS, max_size=2))
    clock["escalation"] = in_climbing_order(rungs, lambda rung: str(rung["after"]))
    return clock


class _Builder:
    """Collects the transitions of one definition, naming each uniquely."""

    def __init__(
        self, draw: st.DrawFn, roles: list[dict[str, Any]], states: list[dict[str, Any]]
    ) -> None:
        self.draw = draw
        self.role_specs = roles
        self.roles = [r["name"] for r in roles]
        self.reliable = [
            r["name"] for r in roles if r.get("sees_all") or r.get("kind") == "reporter"
        ]
        self.owner: dict[str, str] = {s["name"]: s["owner"] for s in states if "owner" in s}
        self.clock: dict[str, str] = {s["name"]: s["clock"] for s in states if "clock" in s}
        self.transitions: list[dict[str, Any]] = []
        self.guards = sorted(Registry.default().guards)

    def add(self, kind: str, sources: list[str], dest: str, **extra: Any) -> dict[str, Any]:
        transition = {"name": f"{kind}_{len(self.transitions)}", "from": sources, "to": dest}
        transition.update(extra)
        transition.setdefault("roles", self.some_roles())
        self.transitions.append(transition)
        return transition

    def some_roles(self, *must: str) -> list[str]:
        drawn = _some(self.draw, self.roles, min_size=1, max_size=2)
        return list(dict.fromkeys([*must, *drawn]))

    def skeleton(self, waiting: list[str], finals: list[str]) -> None:
        """Reachability, a way to a final state from everywhere, every final state used."""
        draw = self.draw
        for index, state in enumerate(waiting[1:], start=1):
            source = _one(draw, waiting[:index])
            self.add("enter", [source], state, **self.payload())
        used: set[str] = set()
        for index, state in enumerate(waiting):
            onward = waiting[index + 1 :] + finals
            dest = _one(draw, onward if index < len(waiting) - 1 else finals)
            used.add(dest)
            # The exit: its owner may take it, so may someone who sees every case, and
            # no guard or role rule stands in the way.
            owner, anyone = self.owner[state], _one(draw, self.reliable)
            self.add("exit", [state], dest, roles=self.some_roles(owner, anyone), **self.payload())
        for final in finals:
            if final not in used:
                self.add("finish", [_one(draw, waiting)], final, **self.payload())

    def extras(self, waiting: list[str], finals: list[str]) -> None:
        """Transitions that exercise guards, effects, counters and clocks."""
        kinds = ["plain", "pause", "extension", "assign", "route", "subtask"]
        for kind in _some(self.draw, kinds, max_size=4):
            state = _one(self.draw, waiting)
            getattr(self, f"_{kind}")(state, waiting, finals)

    def expiries(self, clocks: list[dict[str, Any]], waiting: list[str], finals: list[str]) -> None:
        """An expiry action on some clocks: the engine, as ``system``, moves the case on."""
        for clock in clocks:
            timed = [s for s in waiting if self.clock[s] == clock["name"]]
            if not timed or not self.draw(st.booleans()):
                continue
            if "system" not in self.roles:
                self.role_specs.append({"name": "system", "kind": "global", "sees_all": True})
                self.roles.append("system")
            reason = {"type": "text", "required": self.draw(st.booleans())}
            dest = _one(self.draw, finals)
            expire = self.add("expire", timed, dest, roles=["system"], fields={"reason": reason})
            after = self.draw(durations(zero=True))
            clock["on_expiry"] = {
                "trigger": expire["name"],
                "after": after,
                "reason": "time ran out",
            }

    # -- the kinds of extra transitions ---------------------------------------------------

    def _plain(self, state: str, waiting: list[str], finals: list[str]) -> None:
        draw = self.draw
        sources = _some(draw, waiting, min_size=1, max_size=2, unique=True)
        extra = self.payload()
        extra["guards"] = _some(draw, self.guards, max_size=2, unique=True)
        extra["restores_clock"] = draw(st.booleans())
        counter = _one(draw, ["", "rounds", "returns"])
        if counter:
            extra["counts"] = [counter]
            if draw(st.booleans()):
                at_least = draw(st.integers(1, 2))
                rule = {"counter": counter, "at_least": at_least, "roles": self.some_roles()}
                extra["role_rules"] = [rule]
        if draw(st.booleans()):
            extra["divert"] = [self.divert(waiting + finals, counter)]
        dest = _one(draw, waiting + finals)
        self.add("step", list(dict.fromkeys([state, *sources])), dest, **extra)

    def divert(self, states: list[str], counter: str) -> dict[str, Any]:
        """A diversion to one of ``states``, by a built-in guard or by ``counter``."""
        to = _one(self.draw, states)
        if counter and self.draw(st.booleans()):
            return {"to": to, "counter": counter, "at_least": self.draw(st.integers(1, 3))}
        return {"to": to, "guard": _one(self.draw, self.guards)}

    def _pause(self, state: str, waiting: list[str], finals: list[str]) -> None:
        self.add("pause", [state], state, guards=["not_paused"], marks={"paused": "info"})
        self.add("resume", [state], state, guards=["paused_for_info"], marks={"paused": None})

    def _extension(self, state: str, waiting: list[str], finals: list[str]) -> None:
        self.add(
            "ask_more_time",
            [state],
            state,
            guards=["before_due", "no_extension_pending", "extension_fits"],
            fields={"duration": {"type": "text", "required": True, "max_length": 40}},
            effects=["record_extension_request"],
        )
        self.add(
            "grant_more_time",
            [state],
            state,
            guards=["extension_pending"],
            extends_clock="extension_request.duration",
            marks={"extension_request": None},
            counts=["extensions"],
        )

    def _assign(self, state: str, waiting: list[str], finals: list[str]) -> None:
        fields = {"unit": {"type": "code", "required": True}, "co_units": {"type": "codes"}}
        dest = _one(self.draw, waiting)
        if self.draw(st.booleans()):
            self.add(
                "assign",
                [state],
                dest,
                fields=fields,
                guards=["known_units"],
                effects=["assign_named_unit"],
            )
        else:
            self.add("assign", [state], dest, fields=fields, sets={"lead_unit": "unit"})
        self.add("start", [dest], dest, effects=["activate_subtasks"])

    def _route(self, state: str, waiting: list[str], finals: list[str]) -> None:
        fields = {"unit": {"type": "code"}, "reason": {"type": "text"}}
        self.add(
            "route",
            [state],
            _one(self.draw, waiting),
            fields=fields,
            guards=["routable"],
            effects=["route"],
            divert=[{"to": _one(self.draw, waiting), "guard": "routing_disputed"}],
        )

    def _subtask(self, state: str, waiting: list[str], finals: list[str]) -> None:
        self.add(
            "part_done",
            [state],
            state,
            guards=["has_active_subtask"],
            fields={"result": {"type": "text", "required": True}},
            effects=["complete_subtask"],
        )
        guards = ["subtasks_done"]
        self.add("all_done", [state], _one(self.draw, finals), guards=guards)

    # -- payload fields ---------------------------------------------------------------------

    def payload(self) -> dict[str, Any]:
        """``fields`` and what they set, and maybe ``marks`` and ``counts``."""
        draw = self.draw
        types = _some(draw, FIELD_TYPES, max_size=3)
        fields: dict[str, Any] = {}
        sets: dict[str, str] = {}
        for index, kind in enumerate(types):
            name = f"{kind}_{index}"
            fields[name] = self.field(kind)
            if draw(st.booleans()):
                target = _one(draw, [*_SETTABLE.get(kind, ()), f"kept_{name}"])
                sets.setdefault(target, name)
        extra: dict[str, Any] = {"fields": fields, "sets": sets}
        if draw(st.integers(0, 3)) == 0:
            marked = _some(draw, ["stage", "flag"], min_size=1, unique=True)
            extra["marks"] = {name: _one(draw, _MARKS) for name in marked}
        return extra

    def field(self, kind: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": kind}
        if kind == "choice":
            spec["choices"] = list(URGENCIES)
        if kind == "text":
            spec["max_length"] = _one(self.draw, [8, 60, 4000])
        if self.draw(st.booleans()):
            spec["required"] = True
        elif kind in _DEFAULTS and self.draw(st.booleans()):
            spec["default"] = _DEFAULTS[kind]
        return spec
