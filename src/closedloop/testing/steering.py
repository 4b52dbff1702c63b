"""What steers the generated state machine towards the (state, trigger) pairs a run has
not fired yet: valid, case-aware payloads and the triggers that lead there.

* :class:`Vocabulary` - the units, categories and areas commands may name: those of the
  engine's responsibility list (and its directory) when it has one, the strategies'
  shared codes otherwise.
* :func:`valid_payloads` - payloads a command on this case can pass with: every required
  field, a unit the list knows (another one than the case's, for a redispatch), a
  category, another open case to merge into, an extension in the running clock's unit.
* :class:`Steering` - from a case's state, the triggers not yet fired there in this
  example or, when all are, those leading closest to a state that still has some.

Everything is derived from the workflow's definition (fields, ``sets``,
``merges_into``, guards by name, the state graph) and the list; nothing is read from
earlier examples, so that Hypothesis replays an example the way it first drew it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from closedloop.engine.definition import FieldSpec, TransitionSpec, Workflow
from closedloop.engine.model import Case

DEFAULT_UNITS: tuple[str, ...] = ("u1", "u2", "water", "street_s1")
DEFAULT_CATEGORIES: tuple[str, ...] = ("01", "01.01", "02.03")
DEFAULT_AREAS: tuple[str, ...] = ("D1.S1.C1.G01", "D1.S2")
WORDS: tuple[str, ...] = ("done", "checked on site", "水管已修复", "see the photo", "Ünïcödé ok")
"""Plain text for fields a valid payload fills: the hostile text is ``fire``'s job."""

UNIT_EFFECTS = frozenset({"route", "assign_named_unit"})
"""Built-in effects that read the payload's ``unit``."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The codes valid commands name.

    Attributes:
        units: Unit ids a dispatch may name.
        categories: Category codes a classification may give.
        areas: Area codes a report may be located in.
        listed: Whether an engine's responsibility list routes dispatches (a dispatch
            may then leave the unit out).
        field_values: Strategies for payload fields by name, drawn instead of the
            defaults of their type (``workflow_state_machine(field_values=...)``).
    """

    units: tuple[str, ...] = DEFAULT_UNITS
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    areas: tuple[str, ...] = DEFAULT_AREAS
    listed: bool = False
    field_values: Mapping[str, st.SearchStrategy[Any]] = field(default_factory=dict)


def vocabulary(engine_options: Mapping[str, Any] | None = None) -> Vocabulary:
    """The vocabulary of the engine built with ``engine_options``: its responsibility
    list's entries (lead and co-units, categories, areas) and its directory's units,
    or the shared defaults."""
    options = engine_options or {}
    duties = options.get("responsibilities")
    directory = options.get("directory")
    if directory is None and duties is not None:
        directory = duties.directory
    units: list[str] = []
    categories: list[str] = []
    areas: list[str] = []
    if duties is not None:
        for entry in duties.entries:
            units += [entry.lead_unit, *(co.unit for co in entry.co_units)]
            categories.append(entry.category)
            areas.append(entry.area)
    if directory is not None:
        units += [unit.id for unit in directory.units()]
    return Vocabulary(
        units=_unique(units) or DEFAULT_UNITS,
        categories=_unique(categories) or DEFAULT_CATEGORIES,
        areas=_unique(areas) or DEFAULT_AREAS,
        listed=duties is not None,
    )


def valid_reports(words: Vocabulary) -> st.SearchStrategy[dict[str, Any]]:
    """Reports the list can route: a category and an area it names, most of the time."""
    return st.fixed_dictionaries(
        {"description": st.sampled_from(WORDS)},
        optional={
            "category": st.sampled_from(words.categories),
            "location": st.fixed_dictionaries({"area": st.sampled_from(words.areas)}),
        },
    )


def valid_payloads(
    workflow: Workflow,
    transition: TransitionSpec,
    case: Case,
    words: Vocabulary,
    others: Sequence[str] = (),
    now: datetime | None = None,
    field_values: Mapping[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """A payload ``transition`` accepts on ``case``, as far as the definition tells.

    Args:
        others: Ids of the other open cases (for a field naming the case merged into).
        now: The present instant: a date or time field (an appointment, a visit) is
            drawn from a day before it to two days after, so that guards waiting for
            it open within the run.
        field_values: Strategies for fields by name, used instead of the defaults of
            their type wherever ``transition`` has such a field; ``words.field_values``
            when ``None``.
    """
    if field_values is None:
        field_values = words.field_values
    del workflow  # the transition carries what is needed; kept for a uniform signature
    unit_fields = _unit_fields(transition)
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, spec in transition.fields.items():
        if field_values is not None and name in field_values:
            value: st.SearchStrategy[Any] | None = field_values[name]
        else:
            value = _valid_value(transition, name, spec, case, words, others, unit_fields, now)
        if value is None:
            continue
        # Without a list to route by, the unit a dispatch names is what makes it valid.
        needed = spec.required or (name in unit_fields and not words.listed)
        (required if needed else optional)[name] = value
    if words.listed and unit_fields & set(transition.fields) and "reason" in transition.fields:
        # Naming another unit than the list's is an override: give it a reason.
        required.setdefault("reason", st.sampled_from(WORDS))
    return st.fixed_dictionaries(required, optional=optional)


class Steering:
    """Which triggers bring a run closer to the (state, trigger) pairs it has not fired.

    Args:
        workflow: The workflow whose declared pairs are to be fired.
    """

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.declared: dict[str, list[str]] = {
            s.name: [t.name for t in workflow.transitions_from(s.name)] for s in workflow.states
        }
        self.leads: dict[str, tuple[str, ...]] = {
            t.name: workflow.destinations(t) for t in workflow.transitions
        }
        self.final = frozenset(s.name for s in workflow.states if s.final)
        self._globals = {r.name for r in workflow.roles if r.kind == "global"}
        self.depth: dict[str, int] = self._depths()
        sees_all = {r.name for r in workflow.roles if r.kind != "global" or r.sees_all}
        self.own_roles: dict[str, tuple[str, ...]] = {
            t.name: tuple(r for r in t.roles if r not in sees_all and r in self._globals)
            for t in workflow.transitions
        }
        """Per trigger, its global roles that see only cases related to their holder
        (no ``sees_all``): such a holder acts on the cases they reported."""
        self.pairs: tuple[tuple[str, str], ...] = tuple(
            (state, t) for state, triggers in self.declared.items() for t in triggers
        )

    @property
    def hard(self) -> list[tuple[str, str]]:
        """Every declared pair, repeated once per step its state lies from the initial
        state and twice more if it ends the case: the pairs random steps reach least."""
        weights = {
            (state, t): self.depth.get(state, 0) + 1 + 2 * (set(self.leads[t]) <= self.final)
            for state, t in self.pairs
        }
        return [pair for pair in self.pairs for _ in range(weights[pair])]

    def _depths(self) -> dict[str, int]:
        """Steps from the initial state to each state it reaches."""
        depth = {self.workflow.initial.name: 0}
        frontier = [self.workflow.initial.name]
        while frontier:
            state = frontier.pop(0)
            for t in self.declared[state]:
                for d in self.leads[t]:
                    if d not in depth:
                        depth[d] = depth[state] + 1
                        frontier.append(d)
        return depth

    def toward(
        self,
        state: str,
        fired: Iterable[tuple[str, str]],
        focus: tuple[str, str] | None = None,
    ) -> list[str]:
        """Triggers worth firing from ``state``: those not yet fired from it (weighted by
        repetition: one that ends the case less often near the start), else those
        leading nearest to a state with a pair not fired, else every trigger declared
        from it."""
        done = set(fired)
        if focus is not None and focus not in done:
            # The pair this example aims at first: its trigger, or the way there.
            if focus[0] == state:
                return [focus[1]] * 3 + self.toward(state, done)
            here = self.distances(set(self.pairs) - {focus}).get(state)
            if here is not None:
                ahead = self._closer(state, set(self.pairs) - {focus}, here)
                return ahead * 3 + self.toward(state, done)
        unreached = [t for t in self.declared[state] if (state, t) not in done]
        if unreached:
            # A trigger that ends the case weighs less near the start, where the loop
            # comes back cheaply, and as much as the others from three steps in.
            ends = min(self.depth.get(state, 0), 3)
            weighted = [
                t for t in unreached for _ in range(ends if set(self.leads[t]) <= self.final else 3)
            ]
            return weighted or unreached  # only ends left at the start: they still count
        distance = self.distances(done)
        here = distance.get(state)
        if here is None:
            return list(self.declared[state])
        return self._closer(state, done, here) or list(self.declared[state])

    def _closer(self, state: str, done: set[tuple[str, str]], here: int) -> list[str]:
        distance = self.distances(done)
        return [
            t
            for t in self.declared[state]
            if min((distance.get(d, here) for d in self.leads[t]), default=here) < here
        ]

    def distances(self, fired: Iterable[tuple[str, str]]) -> dict[str, int]:
        """Steps from each state to the nearest one with a pair not in ``fired``
        (states from which none can be reached are left out)."""
        done = set(fired)
        distance = {
            state: 0
            for state, triggers in self.declared.items()
            if any((state, t) not in done for t in triggers)
        }
        changed = True
        while changed:
            changed = False
            for state, triggers in self.declared.items():
                ahead = [distance[d] + 1 for t in triggers for d in self.leads[t] if d in distance]
                if ahead and min(ahead) < distance.get(state, len(self.declared) + 1):
                    distance[state] = min(ahead)
                    changed = True
        return distance


def _unit_fields(transition: TransitionSpec) -> set[str]:
    """Payload fields naming the unit that leads the case after ``transition``."""
    named = {field for attribute, field in transition.sets.items() if attribute == "lead_unit"}
    if UNIT_EFFECTS & set(transition.effects) and "unit" in transition.fields:
        named.add("unit")
    return named


def _valid_value(
    transition: TransitionSpec,
    name: str,
    spec: FieldSpec,
    case: Case,
    words: Vocabulary,
    others: Sequence[str],
    unit_fields: set[str],
    now: datetime | None,
) -> st.SearchStrategy[Any] | None:
    match spec.type:
        case "text" if name == "duration" and case.deadline is not None:
            # An extension in the running clock's own unit always fits it.
            return st.just(case.deadline.limit.as_written())
        case "text":
            return st.sampled_from([w for w in WORDS if len(w) <= spec.max_length] or ["x"])
        case "code" if name == transition.merges_into:
            return st.sampled_from(others) if others else None
        case "code" if name in unit_fields:
            fresh = [u for u in words.units if u != case.lead_unit]
            return st.sampled_from(fresh or words.units)
        case "code" if transition.sets.get("category") == name or name == "category":
            return st.sampled_from(words.categories)
        case "code":
            return st.sampled_from([*words.units, *words.categories])
        case "codes":
            fresh = [u for u in words.units if u != case.lead_unit]
            return st.lists(st.sampled_from(fresh or words.units), max_size=2, unique=True)
        case "choice":
            return st.sampled_from(spec.choices)
        case "bool":
            return st.booleans()
        case "int":
            return st.integers(0, 10)
        case "number":
            return st.floats(0, 100, allow_nan=False)
        case "datetime":
            at = (now or datetime(2026, 1, 5, 9, tzinfo=UTC)).astimezone(UTC)
            return st.integers(-24, 48).map(lambda hours: at + timedelta(hours=hours))
        case "media":
            return st.lists(_media(), min_size=1, max_size=1)
    return None  # pragma: no cover - FieldType is closed


def _media() -> st.SearchStrategy[dict[str, str]]:
    digest = hashlib.sha256(b"after").hexdigest()
    return st.just({"url": "https://media.example.org/p/1.jpg", "content_type": "image/jpeg"}).map(
        lambda ref: {**ref, "sha256": digest}
    )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
