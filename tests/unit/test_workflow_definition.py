"""Loading workflow definitions and every rule of the validator."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from closedloop import InvalidWorkflow, Registry, Workflow, workflows
from closedloop.engine.context import Context


def minimal() -> dict[str, Any]:
    """The smallest valid loop: open -> done, with a clock and an owner on open."""
    return {
        "name": "tiny",
        "roles": [{"name": "clerk"}],
        "clocks": [{"name": "wait", "duration": "2 hours"}],
        "states": [
            {"name": "open", "initial": True, "owner": "clerk", "clock": "wait"},
            {"name": "done", "final": True},
        ],
        "transitions": [{"name": "finish", "from": ["open"], "to": "done", "roles": ["clerk"]}],
    }


def problems_of(data: Any, **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(InvalidWorkflow) as raised:
        Workflow.from_dict(data, **kwargs)
    return raised.value.problems


def test_minimal_definition_loads_from_dict_yaml_and_json(tmp_path: Path) -> None:
    from_dict = Workflow.from_dict(minimal())
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(minimal()), encoding="utf-8")
    json_path = tmp_path / "tiny.json"
    json_path.write_text(json.dumps(minimal()), encoding="utf-8")
    assert Workflow.from_yaml(path) == from_dict
    assert Workflow.from_json(json.dumps(minimal())) == from_dict
    assert Workflow.from_json(json_path) == from_dict
    assert from_dict.initial.name == "open"


def test_standard_workflow_has_the_design_states() -> None:
    states = {s.name for s in workflows.standard().states}
    assert states == {
        "reported", "classified", "assigned", "returned", "arbitration", "in_progress",
        "handled", "awaiting_confirmation", "closed", "rejected", "merged", "cancelled",
    }  # fmt: skip


def test_definitions_are_frozen() -> None:
    workflow = Workflow.from_dict(minimal())
    with pytest.raises(ValueError, match="frozen"):
        workflow.name = "other"  # type: ignore[misc]


def test_two_initial_states_and_no_final_state() -> None:
    data = minimal()
    data["states"][1] = {"name": "done", "initial": True, "owner": "clerk", "clock": "wait"}
    problems = problems_of(data)
    assert any("exactly one initial state" in p and "found 2" in p for p in problems)
    assert any("at least one final state" in p for p in problems)


def test_unreachable_state() -> None:
    data = minimal()
    data["states"].append({"name": "island", "owner": "clerk", "clock": "wait"})
    data["transitions"].append(
        {"name": "leave", "from": ["island"], "to": "done", "roles": ["clerk"]}
    )
    assert problems_of(data) == ("states[2] (island): unreachable from the initial state 'open'",)


def test_trap_state_cannot_reach_final() -> None:
    data = minimal()
    data["states"].append({"name": "limbo", "owner": "clerk", "clock": "wait"})
    data["transitions"].append(
        {"name": "park", "from": ["open"], "to": "limbo", "roles": ["clerk"]}
    )
    data["transitions"].append(
        {"name": "spin", "from": ["limbo"], "to": "limbo", "roles": ["clerk"]}
    )
    (problem,) = problems_of(data)
    assert problem.startswith("states[2] (limbo): cannot reach any final state")


def test_waiting_state_without_clock_or_owner() -> None:
    data = minimal()
    data["states"][0] = {"name": "open", "initial": True}
    problems = problems_of(data)
    assert "states[0] (open).clock: a waiting state must name the clock that runs in it" in problems
    assert "states[0] (open).owner: a waiting state must name the role that acts next" in problems


def test_final_state_with_clock_and_outgoing_transition() -> None:
    data = minimal()
    data["states"][1] = {"name": "done", "final": True, "clock": "wait"}
    data["transitions"].append({"name": "undo", "from": ["done"], "to": "open", "roles": ["clerk"]})
    problems = problems_of(data)
    assert "states[1] (done): a final state has no clock and no owner" in problems
    assert "states[1] (done): a final state cannot have outgoing transitions" in problems


def test_owner_who_cannot_act() -> None:
    data = minimal()
    data["roles"].append({"name": "boss"})
    data["states"][0]["owner"] = "boss"
    (problem,) = problems_of(data)
    assert "waits on 'boss'" in problem


def test_undeclared_references_are_all_listed() -> None:
    data = minimal()
    data["transitions"][0] = {
        "name": "finish",
        "from": ["opn"],
        "to": "dne",
        "roles": ["clark"],
        "guards": ["is_tuesday"],
        "effects": ["launch"],
        "sets": {"result": "outcome"},
    }
    data["states"][0]["clock"] = "wiat"
    problems = problems_of(data)
    expected = [
        "transitions[0] (finish).from[0]: unknown state 'opn'",
        "transitions[0] (finish).to: unknown state 'dne'",
        "transitions[0] (finish).roles[0]: unknown role 'clark'",
        "transitions[0] (finish).guards[0]: unknown guard 'is_tuesday'",
        "transitions[0] (finish).effects[0]: unknown effect 'launch'",
        "transitions[0] (finish).sets.result: field 'outcome' is not a field",
        "states[0] (open).clock: unknown clock 'wiat'",
    ]
    for fragment in expected:
        assert any(p.startswith(fragment) for p in problems), (fragment, problems)


def test_duplicate_names_in_every_section() -> None:
    data = minimal()
    data["roles"].append({"name": "clerk"})
    data["clocks"].append({"name": "wait", "duration": "1 hour"})
    data["states"].append({"name": "done", "final": True})
    data["transitions"].append(
        {"name": "finish", "from": ["open"], "to": "done", "roles": ["clerk"]}
    )
    problems = problems_of(data)
    for section, name in (
        ("roles", "clerk"),
        ("clocks", "wait"),
        ("states", "done"),
        ("transitions", "finish"),
    ):
        assert f"{section}: duplicate name {name!r} (2 times)" in problems


def test_duplicate_keys_in_yaml_and_json(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nname: b\n", encoding="utf-8")
    with pytest.raises(InvalidWorkflow, match="duplicate key 'name'"):
        Workflow.from_yaml(path)
    with pytest.raises(InvalidWorkflow, match="duplicate key 'name'"):
        Workflow.from_json('{"name": "a", "name": "b"}')


def test_field_rules() -> None:
    data = minimal()
    data["transitions"][0]["fields"] = {
        "kind": {"type": "choice"},
        "note": {"type": "text", "choices": ["a"]},
        "level": {"type": "choice", "choices": ["low"], "default": "high"},
        "must": {"type": "text", "required": True, "default": "x"},
        "Bad-Name": {"type": "text"},
    }
    problems = problems_of(data)
    where = "transitions[0] (finish).fields"
    assert f"{where}.kind.choices: a choice field needs at least one choice" in problems
    assert f"{where}.note.choices: only choice fields take choices" in problems
    assert f"{where}.level.default: 'high' is not one of ['low']" in problems
    assert f"{where}.must: a required field cannot have a default" in problems
    assert f"{where}.Bad-Name: 'Bad-Name' is not a valid field name" in problems


def test_reserved_targets_and_triggers() -> None:
    data = minimal()
    data["transitions"][0]["name"] = "report"
    data["transitions"][0]["marks"] = {"state": "done", "version": 9}
    problems = problems_of(data)
    assert "transitions[0] (report).name: 'report' is reserved for the engine" in problems
    assert any(p.startswith("transitions[0] (report).marks.state: case field") for p in problems)
    assert any(p.startswith("transitions[0] (report).marks.version: case field") for p in problems)


def test_bad_duration_and_unknown_privacy_role() -> None:
    data = minimal()
    data["clocks"][0]["duration"] = "soon"
    data["privacy"] = {"full_contact": ["mayor"]}
    problems = problems_of(data)
    assert any(
        p.startswith("clocks[0] (wait).duration: 'soon' is not a duration") for p in problems
    )
    assert "privacy.full_contact[0]: unknown role 'mayor'" in problems


def test_structural_errors_have_paths() -> None:
    data = minimal()
    data["states"][0]["colour"] = "red"
    data["transitions"][0]["roles"] = []
    problems = problems_of(data)
    assert any(p.startswith("states[0].colour:") for p in problems)
    assert any(p.startswith("transitions[0].roles:") for p in problems)


@pytest.mark.parametrize("junk", [None, [], "text", 3, {"name": 5}, {"states": "x"}])
def test_junk_is_invalid_workflow(junk: Any) -> None:
    problems_of(junk)


def test_custom_guard_from_a_registry() -> None:
    def weekday_only(ctx: Context) -> str | None:
        return None if ctx.now.weekday() < 5 else "closed at weekends"

    data = copy.deepcopy(minimal())
    data["transitions"][0]["guards"] = ["weekday_only"]
    problems_of(data)  # unknown in the default registry
    registry = Registry.default().extended(guards={"weekday_only": weekday_only})
    workflow = Workflow.from_dict(data, registry=registry)
    assert workflow.registry.guard("weekday_only") is weekday_only


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidWorkflow, match="cannot read"):
        Workflow.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["finish\n", "finish ", "Finish", "9finish", "x" * 65])
def test_a_name_must_be_matched_whole(name: str) -> None:
    data = minimal()
    data["transitions"][0]["name"] = name
    problems = problems_of(data)
    assert any(p.startswith("transitions[0].name:") and "not a valid name" in p for p in problems)


def test_case_records_are_cleared_by_marks_but_made_only_by_effects() -> None:
    data = minimal()
    data["transitions"][0].update(
        fields={"note": {"type": "text"}},
        sets={"routing": "note"},
        marks={"subtasks": "all", "misdirects": None, "paused": "info"},
    )
    assert set(problems_of(data)) == {
        "transitions[0] (finish).marks.subtasks: case field 'subtasks' takes only null",
        "transitions[0] (finish).sets.routing: case field 'routing' is made by effects, not fields",
    }


def test_an_escalation_step_telling_no_one_is_refused_at_load() -> None:
    data = minimal()
    data["clocks"][0]["escalation"] = [
        {"after": "0 hours", "notify": ["supervising_unit", "role:clerk"]},
        {"after": "1 hour", "notify": ["clerk", "role:boss"]},
    ]
    assert problems_of(data) == (
        "clocks.wait.escalation[1].notify: 'clerk' is not "
        "['co_units', 'lead_unit', 'parent_unit', 'reporter', 'subtask_unit', "
        "'supervising_unit'] or role:<declared role>",
        "clocks.wait.escalation[1].notify: 'role:boss' is not "
        "['co_units', 'lead_unit', 'parent_unit', 'reporter', 'subtask_unit', "
        "'supervising_unit'] or role:<declared role>",
    )
    data["clocks"][0]["escalation"][1]["notify"] = ["parent_unit"]
    assert Workflow.from_dict(data).clocks[0].escalation[1].notify == ("parent_unit",)


def test_escalation_steps_listed_out_of_order_are_refused_at_load() -> None:
    data = minimal()
    data["clocks"][0]["escalation"] = [
        {"after": "5 working days", "notify": ["parent_unit"]},
        {"after": "0 hours", "supervise": True},
        {"after": "2 days"},
        {"after": "30 hours"},
        {"after": "3 working hours"},  # working hours after natural ones: not compared
    ]
    assert problems_of(data) == (
        "clocks[0] (wait).escalation[1].after: '0 hours' comes before the step listed above "
        "it (escalation[0].after: '5 working days'); the steps are climbed in the order "
        "listed, so list them from the earliest",
        "clocks[0] (wait).escalation[3].after: '30 hours' comes before the step listed above "
        "it (escalation[2].after: '2 days'); the steps are climbed in the order listed, so "
        "list them from the earliest",
    )
    data["clocks"][0]["escalation"] = [
        {"after": "0 hours", "supervise": True},
        {"after": "0 hours"},
        {"after": "2 working days"},
        {"after": "5 working days", "notify": ["parent_unit"]},
    ]
    assert len(Workflow.from_dict(data).clocks[0].escalation) == 4
