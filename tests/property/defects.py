"""Workflow definitions with ONE known defect injected: :func:`broken_workflows`.

Each draw is ``(data, defect)``: a definition that :func:`~closedloop.testing.workflows`
made valid, then broken in one way, and a :class:`Defect` saying how the loader must
name the problem. A test asserts that ``Workflow.from_dict(data)`` raises
``InvalidWorkflow`` and that ``defect.found_in(error.problems)``.

Each defect is worded as closedloop's own loader words it, so this tests that loader
and nothing else; it lives with the tests, not in ``closedloop.testing``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from closedloop.testing.definitions import Definition, workflows


@dataclass(frozen=True, slots=True)
class Defect:
    """A defect injected into a definition, and how the loader must report it.

    Attributes:
        kind: Which defect (one of :data:`DEFECTS`).
        path: Where it is: the reported problem starts with this path.
        words: What it is: the reported problem contains these words.
    """

    kind: str
    path: str
    words: str

    def found_in(self, problems: Sequence[str]) -> bool:
        """Whether one of ``problems`` names this defect at its path."""
        return any(p.startswith(self.path) and self.words in p for p in problems)


Injector = Callable[[st.DrawFn, Definition], Defect]
_INJECTORS: dict[str, Injector] = {}


def _defect(kind: str) -> Callable[[Injector], Injector]:
    def register(injector: Injector) -> Injector:
        _INJECTORS[kind] = injector
        return injector

    return register


def broken_workflows(*, kinds: Sequence[str] | None = None) -> st.SearchStrategy[Any]:
    """Definitions (plain data) with one known defect, as ``(data, defect)`` pairs.

    Args:
        kinds: Only these defects (see :data:`DEFECTS`); all of them by default.
    """
    chosen = list(kinds) if kinds is not None else sorted(_INJECTORS)
    unknown = sorted(set(chosen) - set(_INJECTORS))
    if unknown or not chosen:
        raise ValueError(f"unknown defect kinds {unknown}; known: {sorted(_INJECTORS)}")
    return _broken(chosen)


@st.composite
def _broken(draw: st.DrawFn, kinds: list[str]) -> tuple[Definition, Defect]:
    data = copy.deepcopy(draw(workflows(as_dict=True)))
    kind = draw(st.sampled_from(kinds))
    return data, _INJECTORS[kind](draw, data)


# -- helpers -------------------------------------------------------------------------------


def _waiting(data: Definition) -> list[int]:
    return [i for i, s in enumerate(data["states"]) if not s.get("final")]


def _finals(data: Definition) -> list[int]:
    return [i for i, s in enumerate(data["states"]) if s.get("final")]


def _pick(draw: st.DrawFn, indexes: Sequence[int]) -> int:
    return draw(st.sampled_from(list(indexes)))


def _state_at(draw: st.DrawFn, data: Definition, indexes: Sequence[int]) -> tuple[int, Any]:
    index = _pick(draw, indexes)
    return index, data["states"][index]


def _transition_at(draw: st.DrawFn, data: Definition) -> tuple[int, Any, str]:
    index = _pick(draw, range(len(data["transitions"])))
    transition = data["transitions"][index]
    return index, transition, f"transitions[{index}] ({transition['name']})"


def _expiry_triggers(data: Definition) -> set[str]:
    return {c["on_expiry"]["trigger"] for c in data["clocks"] if c.get("on_expiry")}


def _new_state(data: Definition, name: str, owner: str, clock: str) -> int:
    data["states"].append({"name": name, "owner": owner, "clock": clock})
    # A clock's expiry action must leave every state it times: this one too.
    for spec in data["clocks"]:
        if spec["name"] == clock and spec.get("on_expiry"):
            trigger = spec["on_expiry"]["trigger"]
            expire = next(t for t in data["transitions"] if t["name"] == trigger)
            expire["from"].append(name)
    return len(data["states"]) - 1


def _a_waiting_state(draw: st.DrawFn, data: Definition) -> Any:
    return data["states"][_pick(draw, _waiting(data))]


# -- the graph -----------------------------------------------------------------------------


@_defect("trap_state")
def _trap(draw: st.DrawFn, data: Definition) -> Defect:
    entry = _a_waiting_state(draw, data)
    owner = entry["owner"]
    data["clocks"].append({"name": "trap_clock", "duration": "1 hours"})  # no expiry way out
    index = _new_state(data, "trap", owner, "trap_clock")
    data["transitions"].append(
        {"name": "fall_in", "from": [entry["name"]], "to": "trap", "roles": [owner]}
    )
    data["transitions"].append({"name": "spin", "from": ["trap"], "to": "trap", "roles": [owner]})
    return Defect("trap_state", f"states[{index}] (trap)", "cannot reach any final state")


@_defect("unreachable_state")
def _island(draw: st.DrawFn, data: Definition) -> Defect:
    model = _a_waiting_state(draw, data)
    final = data["states"][_pick(draw, _finals(data))]["name"]
    index = _new_state(data, "island", model["owner"], model["clock"])
    leave = {"name": "leave_island", "from": ["island"], "to": final, "roles": [model["owner"]]}
    data["transitions"].append(leave)
    return Defect("unreachable_state", f"states[{index}] (island)", "unreachable from the initial")


@_defect("owner_cannot_act")
def _bystander(draw: st.DrawFn, data: Definition) -> Defect:
    index, state = _state_at(draw, data, _waiting(data))
    data["roles"].append({"name": "bystander", "kind": "global", "sees_all": True})
    state["owner"] = "bystander"
    where = f"states[{index}] ({state['name']}).owner"
    return Defect("owner_cannot_act", where, "no transition out of")


@_defect("final_with_exit")
def _final_exit(draw: st.DrawFn, data: Definition) -> Defect:
    index, state = _state_at(draw, data, _finals(data))
    back = data["states"][0]["name"]
    role = data["roles"][0]["name"]
    data["transitions"].append(
        {"name": "undo", "from": [state["name"]], "to": back, "roles": [role]}
    )
    where = f"states[{index}] ({state['name']})"
    return Defect("final_with_exit", where, "a final state cannot have outgoing transitions")


# -- states --------------------------------------------------------------------------------


@_defect("waiting_without_clock")
def _no_clock(draw: st.DrawFn, data: Definition) -> Defect:
    index, state = _state_at(draw, data, _waiting(data))
    del state["clock"]
    where = f"states[{index}] ({state['name']}).clock"
    return Defect("waiting_without_clock", where, "a waiting state must name the clock")


@_defect("waiting_without_owner")
def _no_owner(draw: st.DrawFn, data: Definition) -> Defect:
    index, state = _state_at(draw, data, _waiting(data))
    del state["owner"]
    where = f"states[{index}] ({state['name']}).owner"
    return Defect("waiting_without_owner", where, "must name the role that acts next")


@_defect("two_initial_states")
def _two_initial(draw: st.DrawFn, data: Definition) -> Defect:
    others = [i for i in _waiting(data) if not data["states"][i].get("initial")]
    _, state = _state_at(draw, data, others or _finals(data))
    state["initial"] = True
    return Defect("two_initial_states", "states", "exactly one initial state is required, found 2")


@_defect("no_initial_state")
def _no_initial(draw: st.DrawFn, data: Definition) -> Defect:
    data["states"][0]["initial"] = False
    return Defect("no_initial_state", "states", "exactly one initial state is required, found 0")


@_defect("no_final_state")
def _no_final(draw: st.DrawFn, data: Definition) -> Defect:
    data["states"] = [s for s in data["states"] if not s.get("final")]
    return Defect("no_final_state", "states", "at least one final state is required")


@_defect("final_with_clock")
def _final_clock(draw: st.DrawFn, data: Definition) -> Defect:
    index, state = _state_at(draw, data, _finals(data))
    state["clock"] = data["clocks"][0]["name"]
    where = f"states[{index}] ({state['name']})"
    return Defect("final_with_clock", where, "a final state has no clock and no owner")


# -- references to names -------------------------------------------------------------------


@_defect("unknown_owner")
def _ghost_owner(draw: st.DrawFn, data: Definition) -> Defect:
    index, state = _state_at(draw, data, _waiting(data))
    state["owner"] = "ghost"
    where = f"states[{index}] ({state['name']}).owner"
    return Defect("unknown_owner", where, "unknown role 'ghost'")


@_defect("unknown_clock")
def _ghost_clock(draw: st.DrawFn, data: Definition) -> Defect:
    index, state = _state_at(draw, data, _waiting(data))
    state["clock"] = "ghost"
    where = f"states[{index}] ({state['name']}).clock"
    return Defect("unknown_clock", where, "unknown clock 'ghost'")


@_defect("unknown_role")
def _ghost_role(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    transition["roles"].append("ghost")
    where += f".roles[{len(transition['roles']) - 1}]"
    return Defect("unknown_role", where, "unknown role 'ghost'")


@_defect("unknown_target_state")
def _ghost_target(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    transition["to"] = "nowhere"
    return Defect("unknown_target_state", f"{where}.to", "unknown state 'nowhere'")


@_defect("unknown_source_state")
def _ghost_source(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    transition["from"].append("nowhere")
    where += f".from[{len(transition['from']) - 1}]"
    return Defect("unknown_source_state", where, "unknown state 'nowhere'")


@_defect("unknown_guard")
def _ghost_guard(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    guards = transition.setdefault("guards", [])
    guards.append("no_such_guard")
    where += f".guards[{len(guards) - 1}]"
    return Defect("unknown_guard", where, "unknown guard 'no_such_guard'")


@_defect("unknown_effect")
def _ghost_effect(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    effects = transition.setdefault("effects", [])
    effects.append("no_such_effect")
    where += f".effects[{len(effects) - 1}]"
    return Defect("unknown_effect", where, "unknown effect 'no_such_effect'")


@_defect("unknown_expiry_trigger")
def _ghost_expiry(draw: st.DrawFn, data: Definition) -> Defect:
    index = _pick(draw, range(len(data["clocks"])))
    clock = data["clocks"][index]
    clock["on_expiry"] = {"trigger": "nothing_here", "reason": "too late"}
    where = f"clocks[{index}] ({clock['name']}).on_expiry.trigger"
    return Defect("unknown_expiry_trigger", where, "unknown transition 'nothing_here'")


@_defect("unknown_privacy_role")
def _ghost_privacy(draw: st.DrawFn, data: Definition) -> Defect:
    data["privacy"] = {"full_contact": ["ghost"]}
    return Defect("unknown_privacy_role", "privacy.full_contact[0]", "unknown role 'ghost'")


# -- names ---------------------------------------------------------------------------------


@_defect("duplicate_name")
def _duplicate(draw: st.DrawFn, data: Definition) -> Defect:
    section = draw(st.sampled_from(["states", "transitions", "roles", "clocks"]))
    items = data[section]
    item = copy.deepcopy(items[_pick(draw, range(len(items)))])
    items.append(item)
    return Defect("duplicate_name", section, f"duplicate name {item['name']!r} (2 times)")


@_defect("invalid_name")
def _invalid_name(draw: st.DrawFn, data: Definition) -> Defect:
    free = [i for i, t in enumerate(data["transitions"]) if t["name"] not in _expiry_triggers(data)]
    index = _pick(draw, free)
    data["transitions"][index]["name"] = draw(st.sampled_from(["Bad Name", "9lives", "a-b"]))
    return Defect("invalid_name", f"transitions[{index}].name", "is not a valid name")


@_defect("reserved_trigger")
def _reserved(draw: st.DrawFn, data: Definition) -> Defect:
    free = [i for i, t in enumerate(data["transitions"]) if t["name"] not in _expiry_triggers(data)]
    index = _pick(draw, free)
    name = draw(st.sampled_from(["report", "warn", "breach", "escalate"]))
    data["transitions"][index]["name"] = name
    return Defect("reserved_trigger", f"transitions[{index}] ({name}).name", "is reserved")


# -- clocks, fields and the rest -----------------------------------------------------------


@_defect("bad_duration")
def _bad_duration(draw: st.DrawFn, data: Definition) -> Defect:
    index = _pick(draw, range(len(data["clocks"])))
    clock = data["clocks"][index]
    clock["duration"] = draw(st.sampled_from(["soon", "3 fortnights", "-2 hours"]))
    where = f"clocks[{index}] ({clock['name']}).duration"
    return Defect("bad_duration", where, "is not a duration")


@_defect("sets_unknown_field")
def _sets_missing(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    transition.setdefault("sets", {})["kept_ghost"] = "ghost_field"
    return Defect("sets_unknown_field", f"{where}.sets.kept_ghost", "is not a field of this")


@_defect("sets_reserved_case_field")
def _sets_reserved(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    target = draw(st.sampled_from(["state", "version", "reporter_id", "deadline"]))
    transition.setdefault("marks", {})[target] = "x"
    return Defect("sets_reserved_case_field", f"{where}.marks.{target}", "cannot be set by a")


@_defect("choice_without_choices")
def _no_choices(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    transition.setdefault("fields", {})["pick"] = {"type": "choice"}
    return Defect("choice_without_choices", f"{where}.fields.pick.choices", "at least one choice")


@_defect("required_with_default")
def _required_default(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    spec = {"type": "text", "required": True, "default": "x"}
    transition.setdefault("fields", {})["note"] = spec
    return Defect("required_with_default", f"{where}.fields.note", "cannot have a default")


@_defect("divert_without_condition")
def _bare_divert(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    transition["divert"] = [{"to": transition["to"]}]
    return Defect("divert_without_condition", f"{where}.divert[0]", "give either a guard")


@_defect("bad_extends_clock")
def _bad_extends(draw: st.DrawFn, data: Definition) -> Defect:
    _, transition, where = _transition_at(draw, data)
    transition["extends_clock"] = "Not A Path"
    return Defect("bad_extends_clock", f"{where}.extends_clock", "is not an attribute path")


@_defect("missing_key")
def _missing_key(draw: st.DrawFn, data: Definition) -> Defect:
    index = _pick(draw, range(len(data["transitions"])))
    key = draw(st.sampled_from(["roles", "to", "name"]))
    del data["transitions"][index][key]
    return Defect("missing_key", f"transitions[{index}].{key}", "Field required")


@_defect("extra_key")
def _extra_key(draw: st.DrawFn, data: Definition) -> Defect:
    index = _pick(draw, range(len(data["states"])))
    data["states"][index]["colour"] = "red"
    return Defect("extra_key", f"states[{index}].colour", "Extra inputs are not permitted")


@_defect("wrong_type")
def _wrong_type(draw: st.DrawFn, data: Definition) -> Defect:
    index = _pick(draw, range(len(data["states"])))
    data["states"][index]["final"] = draw(st.sampled_from(["maybe", 2, [True]]))
    return Defect("wrong_type", f"states[{index}].final", "valid boolean")


DEFECTS: tuple[str, ...] = tuple(sorted(_INJECTORS))
"""Every kind of defect :func:`broken_workflows` can inject."""
