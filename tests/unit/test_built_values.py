"""The engine's copies of frozen models (``model.built``, under ``replaced``,
``assembled`` and ``unshared``) are the values pydantic's own constructors make."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from closedloop import Actor, Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.model import (
    Case,
    Location,
    ReporterContact,
    assembled,
    built,
    replaced,
    unshared,
)


def _case() -> Case:
    engine = Engine(workflows.standard(), store=InMemoryStore())
    case = engine.report(Actor("citizen-1"), description="井盖缺失", location="1 Main St")
    return case.model_copy(
        update={"counters": {"reopened": 1}, "attributes": {"photos": ["a.jpg"]}}
    )


def _same(made: BaseModel, expected: BaseModel) -> None:
    assert type(made) is type(expected)
    assert made == expected
    assert made.model_fields_set == expected.model_fields_set
    assert made.model_dump_json() == expected.model_dump_json()


def test_a_copy_is_the_case_model_copy_makes_and_shares_no_mutable_value() -> None:
    case = _case()
    copy = unshared(case, {"state": "classified", "version": 2})
    _same(copy, case.model_copy(update={"state": "classified", "version": 2}, deep=True))
    copy.counters["reopened"] = 5
    copy.attributes["photos"].append("b.jpg")
    assert case.counters == {"reopened": 1}
    assert case.attributes == {"photos": ["a.jpg"]}
    with pytest.raises(ValueError, match="frozen"):
        copy.state = "closed"  # still a frozen case


def test_replaced_and_assembled_make_what_model_copy_and_model_construct_make() -> None:
    location = Location(address="1 Main St", area="D1")
    _same(replaced(location, {"area": "D2"}), location.model_copy(update={"area": "D2"}))
    fields = {"name": "张三", "phone": "13812345678", "email": None}
    _same(assembled(ReporterContact, dict(fields)), ReporterContact.model_construct(**fields))


class _Slotted(BaseModel):
    """A model of another layout than pydantic's plain ones (a slot of its own)."""

    model_config = ConfigDict(frozen=True)
    __slots__ = ("note",)

    name: str


def test_a_model_of_another_layout_is_made_slot_by_slot() -> None:
    made = built(_Slotted, {"name": "a"}, None, {"name"})
    _same(made, _Slotted(name="a"))
