"""Codes, identifiers, phones and emails are matched whole: no whitespace or line break
around them is accepted (``"water\\n"`` would leave a case that unit ``water`` never sees).
Every refusal names the field and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from closedloop import Actor, Engine, ValidationError
from closedloop.engine.directory import InMemoryDirectory
from closedloop.engine.hierarchy import code_problem, is_code
from closedloop.engine.inputs import actor_id_problem
from closedloop.errors import InvalidDirectory
from tests.cast import CITIZEN, DISPATCHER, WATER

PADDED = ["{}\n", "{}\r\n", " {}", "{} ", "{}\t", "\u3000{}", "{}\u2028", "\n{}"]
"""Ways to pad a value: line breaks, spaces, tabs, an ideographic space, a line separator."""


def padded(value: str) -> list[str]:
    return [form.format(value) for form in PADDED]


def assert_refused(raised: pytest.ExceptionInfo[ValidationError], field: str) -> None:
    assert raised.value.fields == (field,)
    assert "whitespace or a line break" in str(raised.value) or "not a code" in str(raised.value)


def report_fields(**changes: Any) -> dict[str, Any]:
    return {
        "description": "Manhole cover missing",
        "location": {"address": "9 Pine Rd", "area": "D1.S1"},
        "contact": {"name": "Li Lei", "phone": "13812345678", "email": "li@example.org"},
        "category": "01.01",
        "channel": "hotline",
        **changes,
    }


@pytest.mark.parametrize("value", padded("01.01"))
def test_a_padded_category_is_refused_at_report(engine: Engine, value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        engine.report(CITIZEN, **report_fields(category=value))
    assert_refused(raised, "category")
    assert list(engine.store.case_ids()) == []


@pytest.mark.parametrize("value", padded("hotline"))
def test_a_padded_channel_is_refused(engine: Engine, value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        engine.report(CITIZEN, **report_fields(channel=value))
    assert_refused(raised, "channel")
    assert list(engine.store.case_ids()) == []


@pytest.mark.parametrize("value", padded("D1.S1"))
def test_a_padded_area_is_refused(engine: Engine, value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        engine.report(CITIZEN, **report_fields(location={"address": "9 Pine Rd", "area": value}))
    assert_refused(raised, "location.area")
    assert list(engine.store.case_ids()) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        *(("phone", v) for v in padded("13812345678")),
        ("phone", "138 1234 5678 "),
        ("phone", "+86 138-1234-5678-"),
        *(("email", v) for v in padded("li@example.org")),
    ],
)
def test_a_padded_phone_or_email_is_refused_without_repeating_it(
    engine: Engine, field: str, value: str
) -> None:
    contact = {"name": "Li Lei", field: value}
    with pytest.raises(ValidationError) as raised:
        engine.report(CITIZEN, **report_fields(contact=contact))
    assert raised.value.fields == (f"contact.{field}",)
    assert value.strip() not in str(raised.value)  # contact data stays out of errors
    assert list(engine.store.case_ids()) == []


@pytest.mark.parametrize("phone", ["13812345678", "+86 138 1234 5678", "010-8888-6666", "110"])
def test_phones_with_inner_spaces_and_dashes_are_still_accepted(engine: Engine, phone: str) -> None:
    case = engine.report(CITIZEN, **report_fields(contact={"phone": phone}))
    shown = engine.get(case.id, viewer=CITIZEN).contact
    assert shown is not None
    assert shown.phone == phone


@pytest.mark.parametrize("actor_id", padded("citizen-1"))
def test_an_actor_id_with_surrounding_whitespace_is_refused(actor_id: str) -> None:
    # Before, only the reporter's id was checked, at report: a padded dispatcher or
    # unit member id went into the trail as another actor than the one on screen.
    with pytest.raises(ValidationError) as raised:
        Actor(actor_id)
    assert raised.value.fields == ("actor.id",)


@pytest.mark.parametrize("unit", padded("water"))
def test_an_actor_in_a_padded_unit_is_refused(unit: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Actor("water-1", units={unit})
    assert_refused(raised, "actor.units")


@pytest.mark.parametrize("value", padded("water"))
def test_a_directory_with_a_padded_unit_or_member_id_is_refused(value: str) -> None:
    unit = {"id": "water", "name": "Water", "areas": ["D1"]}
    forms = [
        {"units": [{**unit, "id": value}]},
        {"units": [unit, {"id": "pipes", "name": "Pipes", "parent": value}]},
        {"units": [unit], "members": [{"id": value, "units": ["water"]}]},
        {"units": [unit], "members": [{"id": "w-1", "units": [value]}]},
    ]
    for form in forms:
        with pytest.raises(InvalidDirectory, match="whitespace or a line break"):
            InMemoryDirectory.from_dict({"areas": [{"code": "D1"}], **form})


@pytest.mark.parametrize(
    ("trigger", "payload", "field"),
    [
        *(("dispatch", {"unit": v}, "unit") for v in padded("water")),
        ("dispatch", {"unit": "water", "co_units": ["street_s1\n"]}, "co_units[0]"),
    ],
)
def test_a_padded_unit_is_refused_at_dispatch_and_changes_nothing(
    engine: Engine, trigger: str, payload: dict[str, Any], field: str
) -> None:
    case = engine.report(CITIZEN, **report_fields())
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    before = (engine.get(case.id, viewer=DISPATCHER), len(engine.history(case.id)))
    with pytest.raises(ValidationError) as raised:
        engine.trigger(case.id, trigger, by=DISPATCHER, **payload)
    assert_refused(raised, field)
    assert (engine.get(case.id, viewer=DISPATCHER), len(engine.history(case.id))) == before
    # The exact id still works, and the unit sees its case.
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    assert engine.allowed(case.id, WATER) == ("accept", "return")


@pytest.mark.parametrize("value", padded("01.01"))
def test_a_padded_category_is_refused_at_classification(engine: Engine, value: str) -> None:
    case = engine.report(CITIZEN, description="Street lamp out")
    with pytest.raises(ValidationError) as raised:
        engine.trigger(case.id, "classify", by=DISPATCHER, category=value)
    assert_refused(raised, "category")
    assert engine.get(case.id, viewer=DISPATCHER).state == "reported"
    assert len(engine.history(case.id)) == 1


@pytest.mark.parametrize("value", padded("D1.S1"))
def test_hierarchical_codes_refuse_padding(value: str) -> None:
    assert not is_code(value)
    assert "whitespace or a line break" in (code_problem(value) or "")


def test_a_directory_with_a_padded_area_code_is_refused() -> None:
    data = {
        "areas": [{"code": "D1"}, {"code": "D1.S1\n"}],
        "units": [{"id": "water", "name": "Water", "areas": ["D1"]}],
    }
    with pytest.raises(InvalidDirectory, match=r"areas\[1\].*whitespace or a line break"):
        InMemoryDirectory.from_dict(data)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("op-07", None),
        ("网格员 张", None),
        (" op-07", "begins or ends with whitespace or a line break"),
        ("op-07\t", "must be 1 to 200 printable characters of valid Unicode"),
        ("op-07\n", "must be 1 to 200 printable characters of valid Unicode"),
        ("", "must be 1 to 200 printable characters of valid Unicode"),
        (42, "must be 1 to 200 printable characters of valid Unicode"),
    ],
)
def test_actor_id_problem(value: object, problem: str | None) -> None:
    assert actor_id_problem(value) == problem


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("01.02", True),
        ("D1.S1.C2.G07", True),
        ("wechat:mp", True),
        ("YS-WATER", True),
        ("a_b", True),
        ("01..02", False),
        ("01.", False),
        (".01", False),
        ("01/02", False),
        ("01 02", False),
        ("x" * 129, False),
    ],
)
def test_payload_codes_and_hierarchical_codes_follow_one_grammar(
    memory_engine: Engine, value: str, accepted: bool
) -> None:
    assert is_code(value) is accepted
    case = memory_engine.report(CITIZEN, **report_fields(category=None))
    if accepted:
        classified = memory_engine.trigger(case.id, "classify", by=DISPATCHER, category=value)
        assert classified.category == value
    else:
        with pytest.raises(ValidationError) as raised:
            memory_engine.trigger(case.id, "classify", by=DISPATCHER, category=value)
        assert raised.value.fields == ("category",)
