"""Hypothesis strategies for closedloop workflows: actors, reports, payloads, triggers,
and whole workflow definitions (:func:`workflows`).

Requires ``hypothesis`` (in the ``dev`` extra). The strategies draw mostly valid
values with a share of invalid ones, so that refusals are exercised too.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from hypothesis import strategies as st

from closedloop.engine.definition import FieldSpec, TransitionSpec, Workflow
from closedloop.engine.model import Actor, Case
from closedloop.testing.definitions import durations, workflows

__all__ = [
    "CODES",
    "REPORTERS",
    "UNITS",
    "actor_pool",
    "actors",
    "durations",
    "fitting_actors",
    "payloads",
    "reports",
    "texts",
    "triggers",
    "weighted",
    "workflows",
]

UNITS: tuple[str, ...] = ("u1", "u2", "water", "street_s1")
"""Unit ids the generated payloads and actors share, so assignees exist."""
CODES: tuple[str, ...] = (*UNITS, "01", "01.01", "02.03", "case-1")
REPORTERS: tuple[Actor, ...] = (Actor("citizen-a"), Actor("citizen-b"))

T = TypeVar("T")


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """Draws from each strategy in proportion to its weight, the first one when shrunk.

    (``st.one_of(*[a] * 9, b)`` does not weigh ``a`` nine to one: ``one_of`` keeps each
    strategy once.)
    """
    slots = [index for index, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(slots).flatmap(lambda index: choices[index][1])


def actors(workflow: Workflow, directory: Any = None) -> st.SearchStrategy[Actor]:
    """Actors who may matter to ``workflow``: one per global role, unit members, citizens.

    Args:
        workflow: The workflow whose global roles are drawn.
        directory: When given (a ``Directory``), its units' members are drawn too.
    """
    return st.sampled_from(actor_pool(workflow, directory))


def actor_pool(workflow: Workflow, directory: Any = None) -> list[Actor]:
    """The fixed list that :func:`actors` samples from."""
    pool: list[Actor] = [
        Actor(f"{role.name}-1", roles=frozenset({role.name}))
        for role in workflow.roles
        if role.kind == "global"
    ]
    pool += [Actor(f"member-{unit}", units=frozenset({unit})) for unit in UNITS]
    if directory is not None:
        for unit in directory.units():
            pool += [
                actor
                for member in sorted(directory.members(unit.id))
                if (actor := directory.actor(member)) is not None
            ]
    return [*pool, *REPORTERS]


@functools.lru_cache(maxsize=64)
def texts(*, max_size: int = 60) -> st.SearchStrategy[str]:
    """Mostly plain text, sometimes hostile: controls, bidi marks, surrogates, long."""
    plain = st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=max_size
    )
    hostile = st.text(min_size=0, max_size=max_size)
    return weighted((18, plain), (1, hostile), (1, st.just("界" * 4001)))


def fitting_actors(
    workflow: Workflow, case: Case, transition: TransitionSpec, pool: Sequence[Actor]
) -> st.SearchStrategy[Actor]:
    """Actors holding one of ``transition``'s roles on ``case`` (so commands can succeed)."""
    by_id = {actor.id: actor for actor in pool}
    fitting: list[Actor] = []
    for name in transition.roles:
        kind = workflow.role(name).kind
        if kind == "global":
            fitting.append(Actor(f"{name}-1", roles=frozenset({name})))
        elif kind == "reporter":
            fitting.append(by_id.get(case.reporter_id, Actor(case.reporter_id)))
        elif kind == "lead_unit" and case.lead_unit:
            fitting.append(Actor(f"member-{case.lead_unit}", units=frozenset({case.lead_unit})))
        elif kind == "co_unit" and case.co_units:
            fitting.append(Actor(f"member-{case.co_units[0]}", units=frozenset(case.co_units[:1])))
    return st.sampled_from(fitting or list(pool))


def reports() -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for ``Engine.report`` (description, location, category, channel)."""
    return st.fixed_dictionaries(
        {"description": texts(max_size=120)},
        optional={
            "location": st.one_of(
                texts(max_size=40),
                st.fixed_dictionaries({"area": st.sampled_from(["D1.S1.C1.G01", "D1.S2"])}),
            ),
            "category": st.sampled_from(["01.01", "02.03", "bad code"]),
            "channel": st.sampled_from(["hotline", "app", "grid"]),
        },
    )


def payloads(
    workflow: Workflow,
    transition: TransitionSpec,
    field_values: Mapping[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads for ``transition``: valid ones, and now and then one field wrong or extra.

    Args:
        field_values: Strategies for fields by name, used instead of the defaults of
            their type (see ``docs/testing.md``) wherever ``transition`` has such a field.
    """
    del workflow  # the transition carries its fields; kept for a uniform signature
    chosen = field_values or {}

    def value(name: str, spec: FieldSpec) -> st.SearchStrategy[Any]:
        return chosen[name] if name in chosen else _value(name, spec)

    required = {n: value(n, s) for n, s in transition.fields.items() if s.required}
    optional = {n: value(n, s) for n, s in transition.fields.items() if not s.required}
    valid = st.fixed_dictionaries(required, optional=optional)
    junk = st.dictionaries(
        st.sampled_from([*transition.fields, "unexpected"]),
        st.one_of(
            st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)
        ),
        max_size=3,
    )
    return weighted((9, valid), (1, junk))


def _value(name: str, spec: FieldSpec) -> st.SearchStrategy[Any]:
    match spec.type:
        case "text" if name == "duration":  # an extension asked for: mostly a real one
            return st.one_of(durations(), durations(), texts(max_size=min(spec.max_length, 60)))
        case "text":
            return texts(max_size=min(spec.max_length, 60))
        case "code":
            return st.sampled_from(CODES)
        case "codes":
            return st.lists(st.sampled_from(UNITS), max_size=2, unique=True)
        case "choice":
            return st.sampled_from(spec.choices)
        case "bool":
            return st.booleans()
        case "int":
            return st.integers(-1000, 1000)
        case "number":
            return st.floats(-1e6, 1e6, allow_nan=False)
        case "datetime":
            return st.datetimes(
                min_value=datetime(2020, 1, 1),
                max_value=datetime(2030, 1, 1),
                timezones=st.just(UTC),
            )
        case "media":
            return st.lists(media_refs(), max_size=2)
    raise AssertionError(spec.type)  # pragma: no cover - FieldType is closed


def media_refs() -> st.SearchStrategy[dict[str, str]]:
    """A media reference: a URL or storage key, a content type and a SHA-256 digest."""
    return st.fixed_dictionaries(
        {
            "content_type": st.sampled_from(["image/jpeg", "image/png", "video/mp4"]),
            "sha256": st.binary(min_size=1, max_size=8).map(
                lambda b: hashlib.sha256(b).hexdigest()
            ),
        },
    ).flatmap(
        lambda ref: st.one_of(
            st.just({**ref, "url": "https://media.example.org/p/1.jpg"}),
            st.just({**ref, "key": "photos/2026/1.jpg"}),
        )
    )


def triggers(workflow: Workflow, state: str) -> st.SearchStrategy[str]:
    """A trigger name: usually one declared from ``state`` that leads on to a waiting
    state (so that examples get deep into the loop), sometimes any at all."""
    declared: Sequence[str] = [t.name for t in workflow.transitions_from(state)]
    onward = [n for n in declared if not workflow.state(workflow.transition(n).dest).final]
    every = st.sampled_from([t.name for t in workflow.transitions])
    if not declared:
        return every
    if not onward:
        return weighted((2, st.sampled_from(declared)), (1, every))
    return weighted((3, st.sampled_from(onward)), (2, st.sampled_from(declared)), (1, every))
