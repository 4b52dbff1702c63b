"""A new user's slips at the Engine's public API: each is a typed refusal naming what was
wrong and what is allowed, and each changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import closedloop.workflows
from closedloop import (
    Case,
    CategoryCatalog,
    Engine,
    TransitionNotAllowed,
    ValidationError,
    Workflow,
)
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.reading import Criteria
from closedloop.errors import InvalidResponsibilityList, InvalidWorkflow
from closedloop.testing.clock import ManualClock
from tests.cast import CITIZEN, DISPATCHER

STANDARD_YAML = Path(closedloop.workflows.__file__).with_name("standard.yaml")
DISPATCH_FIELDS = "co_units, reason, unit"

STANDARD_TRIGGERS = (
    "accept, answer, approve_extension, approve_suspension, arbitrate, cancel, classify, "
    "close_unconfirmed, complete_subtask, confirm, dispatch, feedback, merge, provide_info, "
    "redispatch, refer_to_arbitration, refuse_extension, refuse_suspension, reject, "
    "reject_result, reject_return, reopen, request_extension, request_info, "
    "request_suspension, resolve_on_spot, resume, return, send_back, submit_result"
)


def classified(engine: Engine) -> Case:
    case = engine.report(CITIZEN, description="Burst pipe", location="9 Pine Rd")
    return engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")


def unchanged(engine: Engine, case: Case) -> bool:
    return engine.get(case.id, viewer=DISPATCHER) == case and len(engine.history(case.id)) == 2


def test_a_misspelt_trigger_is_named_as_no_trigger_of_the_workflow(memory_engine: Engine) -> None:
    case = classified(memory_engine)
    with pytest.raises(ValidationError) as raised:
        memory_engine.trigger(case.id, "dispach", by=DISPATCHER, unit="water")
    assert raised.value.errors == (
        (
            "name",
            f"'dispach' is not a trigger of workflow 'standard'; triggers: {STANDARD_TRIGGERS}",
        ),
    )
    assert raised.value.status == 422
    assert unchanged(memory_engine, case)


def test_a_declared_trigger_the_state_does_not_allow_is_still_a_conflict(
    memory_engine: Engine,
) -> None:
    case = classified(memory_engine)
    with pytest.raises(TransitionNotAllowed) as raised:
        memory_engine.trigger(case.id, "confirm", by=CITIZEN, rating="satisfied")
    assert (raised.value.status, raised.value.trigger) == (409, "confirm")
    assert unchanged(memory_engine, case)


def test_an_undeclared_trigger_is_refused_before_the_case_is_looked_up(
    memory_engine: Engine,
) -> None:
    with pytest.raises(ValidationError) as raised:
        memory_engine.trigger("no-such-case", "teleport", by=DISPATCHER)
    assert raised.value.fields == ("name",)


# -- payload keys named like the arguments of trigger ------------------------------------


@pytest.mark.parametrize("key", ["case_id", "name"])
def test_a_payload_key_named_like_a_positional_argument_is_an_unknown_field(
    memory_engine: Engine, key: str
) -> None:
    case = classified(memory_engine)
    with pytest.raises(ValidationError) as raised:
        memory_engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water", **{key: "x"})
    assert raised.value.errors == (
        (key, f"is not a field of 'dispatch'; fields: {DISPATCH_FIELDS}"),
    )
    assert unchanged(memory_engine, case)


def test_payload_keys_are_checked_as_trigger_checks_them(memory_engine: Engine) -> None:
    body = {"unit": "water", "by": "x", "expected_version": 1, "idempotency_key": "k1"}
    with pytest.raises(ValidationError) as raised:
        memory_engine.check_payload_keys("dispatch", body)
    assert raised.value.errors == tuple(
        (key, f"is not a field of 'dispatch'; fields: {DISPATCH_FIELDS}")
        for key in ("by", "expected_version", "idempotency_key")
    )
    assert "payload of 'dispatch'" in str(raised.value)
    memory_engine.check_payload_keys("dispatch", {"unit": "water", "reason": "pipes"})
    with pytest.raises(ValidationError) as unknown:
        memory_engine.check_payload_keys("dispach", {"unit": "water"})
    assert unknown.value.fields == ("name",)


@pytest.mark.parametrize("field", ["by", "expected_version", "idempotency_key", "self"])
def test_a_workflow_field_named_like_an_argument_of_trigger_is_refused(field: str) -> None:
    data = yaml.safe_load(STANDARD_YAML.read_text(encoding="utf-8"))
    data["transitions"][0]["fields"][field] = {"type": "text"}
    with pytest.raises(InvalidWorkflow) as raised:
        Workflow.from_dict(data)
    assert raised.value.problems == (
        f"transitions[0] (classify).fields.{field}: {field!r} is an argument of "
        "Engine.trigger; name the field otherwise",
    )


def test_a_workflow_field_named_like_a_positional_argument_of_trigger_is_a_field(
    clock: ManualClock,
) -> None:
    data = yaml.safe_load(STANDARD_YAML.read_text(encoding="utf-8"))
    data["transitions"][0]["fields"].update(case_id={"type": "text"}, name={"type": "text"})
    engine = Engine(Workflow.from_dict(data), store=InMemoryStore(), clock=clock)
    case = engine.report(CITIZEN, description="Burst pipe", location="9 Pine Rd")
    fields = {"category": "01.01", "case_id": "ref-7", "name": "Pine Rd main"}
    classified = engine.trigger(case.id, "classify", by=DISPATCHER, **fields)
    assert (classified.id, classified.state) == (case.id, "classified")
    assert engine.history(case.id)[-1].payload == {**fields, "urgency": "normal"}
    assert engine.workflow.payload_schema("classify")["properties"].keys() >= {"case_id", "name"}


# -- misspelt query criteria -------------------------------------------------------------


def test_a_misspelt_state_is_refused_by_find_count_and_facets(memory_engine: Engine) -> None:
    case = classified(memory_engine)
    states = ", ".join(sorted(state.name for state in memory_engine.workflow.states))
    expected = (("state", f"unknown state 'clsoed'; known: {states}"),)
    for ask in (
        lambda: memory_engine.find(DISPATCHER, state="clsoed"),
        lambda: memory_engine.find(DISPATCHER, state=["classified", "clsoed"]),
        lambda: memory_engine.find(DISPATCHER, state=iter(["clsoed"])),
        lambda: memory_engine.count(DISPATCHER, state="clsoed"),
        lambda: memory_engine.facets(DISPATCHER, by="lead_unit", state="clsoed"),
    ):
        with pytest.raises(ValidationError) as raised:
            ask()
        assert raised.value.errors == expected
    assert [c.id for c in memory_engine.find(DISPATCHER, state=["classified"]).cases] == [case.id]
    assert memory_engine.count(DISPATCHER, state=iter(["classified", "closed"])) == 1


def test_a_misspelt_criterion_is_refused_with_the_criteria(memory_engine: Engine) -> None:
    classified(memory_engine)
    criteria = ", ".join(sorted(Criteria.__optional_keys__))
    assert "state, supervised, text" in criteria
    for ask in (
        lambda: memory_engine.find(DISPATCHER, stat="closed"),  # type: ignore[call-arg]
        lambda: memory_engine.count(DISPATCHER, stat="closed"),  # type: ignore[call-arg]
        lambda: memory_engine.facets(DISPATCHER, by="state", stat="closed"),  # type: ignore[call-arg]
    ):
        with pytest.raises(ValidationError) as raised:
            ask()
        assert raised.value.errors == (("stat", f"is not a criterion; criteria: {criteria}"),)


def test_a_warning_level_that_does_not_exist_is_refused(memory_engine: Engine) -> None:
    classified(memory_engine)
    with pytest.raises(ValidationError) as raised:
        memory_engine.find(DISPATCHER, warning_level="orange")
    assert raised.value.errors == (
        ("warning_level", "unknown warning level 'orange'; known: none, yellow, red"),
    )
    assert memory_engine.count(DISPATCHER, warning_level="none") == 1


# -- a YAML file that does not parse -----------------------------------------------------

BROKEN = "name: district\nstates:\n  - [reported\n  - closed: true\n"
"""A flow list left open on line 3: the parser stops on line 4."""
STOPPED = "line 4, column 11: expected ',' or ']', but got ':' (while parsing a flow sequence"


def test_a_yaml_syntax_error_names_the_workflow_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "district.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(InvalidWorkflow) as raised:
        Workflow.from_yaml(path)
    assert raised.value.problems == (f"not valid YAML: {path}, {STOPPED} from line 3)",)
    assert "<unicode string>" not in str(raised.value)


def test_a_yaml_syntax_error_names_the_catalogue_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "categories.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(InvalidResponsibilityList) as raised:
        CategoryCatalog.from_yaml(path)
    assert raised.value.problems == (f"not valid YAML: {path}, {STOPPED} from line 3)",)


def test_a_character_yaml_does_not_allow_is_named_with_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "district.yaml"
    path.write_text("name: district\ndescription: a\x1fb\n", encoding="utf-8")
    with pytest.raises(InvalidWorkflow) as raised:
        Workflow.from_yaml(path)
    assert raised.value.problems == (
        f"not valid YAML: {path}, line 2, column 15: unacceptable character #x001f: "
        "special characters are not allowed",
    )


def test_a_chinese_unit_code_is_refused_saying_codes_are_ascii(memory_engine: Engine) -> None:
    case = classified(memory_engine)
    with pytest.raises(ValidationError) as refused:
        memory_engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="水务公司")
    assert refused.value.errors == (
        (
            "unit",
            "'水务公司' is not a code; use dot-separated segments of ASCII letters A-Z a-z, "
            "digits 0-9, '_', '-' or ':' (no other characters: no spaces, no Chinese or other "
            "non-ASCII letters) (at most 128 characters)",
        ),
    )
    assert unchanged(memory_engine, case)
