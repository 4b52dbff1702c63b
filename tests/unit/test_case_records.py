"""Records the engine keeps on a case (the pause, routing, subtasks, misdirects) are
typed fields, yet stored JSON and audit events keep them inside ``attributes``, as
cases written before they were fields have them."""

from __future__ import annotations

from datetime import timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from closedloop import Actor, Case, Engine, Workflow, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine import audit
from closedloop.engine.model import (
    Misdirect,
    RoutingRecord,
    Subtask,
    from_stored,
    to_stored,
    unshared,
)
from closedloop.engine.ports import CaseStore
from closedloop.errors import GuardRejected, InvalidWorkflow
from closedloop.testing import ManualClock
from tests.conftest import StoreFactory

DISPATCHER = Actor("d-1", roles={"dispatcher"})
AT = "2026-01-05T09:00:00+00:00"


def old_shape_body() -> dict[str, Any]:
    """An in-progress case, paused for information, as stores have always kept it."""
    return {
        "id": "legacy-1",
        "workflow": "standard",
        "state": "in_progress",
        "reported_at": AT,
        "updated_at": AT,
        "reporter_id": "citizen-1",
        "channel": "phone",
        "description": "the drain is blocked",
        "location": {"address": None, "area": "D1.S1", "lat": None, "long": None},
        "category": "01.01",
        "urgency": None,
        "lead_unit": "WATER",
        "co_units": ["ROADS"],
        "waiting_on": "assignee",
        "deadline": {
            "clock": "handling",
            "calendar": "natural",
            "started_at": AT,
            "limit": "5 working days",
            "extensions": ["1 working day"],
            "due_at": "2026-01-11T09:00:00Z",
            "warn_at": "2026-01-09T09:00:00Z",
            "paused_at": AT,
            "paused_seconds": 0.0,
            "warning": "none",
            "escalation": 0,
            "fallback_days": [],
            "previous": None,
        },
        "supervised": False,
        "counters": {"misdirects": 1},
        "attributes": {
            "question": "which side?",
            "paused": "info",
            "dispatched_by": "d-1",
            "routing": {"by": "d-1", "at": AT, "reason": "street owns it"},
            "misdirects": [{"dispatcher": "d-1", "unit": "GREEN", "at": AT}],
            "subtasks": [
                {
                    "unit": "ROADS",
                    "duty": "close the lane",
                    "mandatory": True,
                    "after": None,
                    "within": "4 hours",
                    "status": "active",
                    "activated_at": AT,
                    "due_at": "2026-01-05T13:00:00+00:00",
                }
            ],
        },
    }


def store_old_shape(store: CaseStore) -> None:
    body = old_shape_body()
    event = audit.seal(
        case_id=body["id"],
        seq=1,
        at=from_stored({**body, "version": 1}).reported_at,
        actor="citizen-1",
        role="reporter",
        trigger="report",
        from_state=None,
        to_state=body["state"],
        payload={},
        reason=None,
        changes=body,
        prev_hash=audit.GENESIS,
    )
    with store.transaction() as tx:
        tx.add_case(from_stored({**body, "version": 1}), None, event)
        tx.commit()


def test_a_case_stored_with_records_in_attributes_reads_verifies_and_moves_on(
    store_factory: StoreFactory,
) -> None:
    store_old_shape(store_factory())
    engine = Engine(workflows.standard(), store=store_factory(), clock=ManualClock())
    case = engine.get("legacy-1", viewer=DISPATCHER)
    assert (case.paused, case.dispatched_by) == ("info", "d-1")
    assert case.routing == RoutingRecord(by="d-1", at=AT, reason="street owns it")
    assert case.misdirects == (Misdirect(dispatcher="d-1", unit="GREEN", at=AT),)
    assert [(t.unit, t.status, str(t.within)) for t in case.subtasks] == [
        ("ROADS", "active", "4 hours")
    ]
    assert case.attributes == {"question": "which side?"}
    assert engine.verify("legacy-1").ok
    case = engine.trigger("legacy-1", "provide_info", by=DISPATCHER, info="the north side")
    assert case.paused is None
    assert case.deadline is not None
    assert case.deadline.paused_at is None
    assert engine.verify("legacy-1").ok
    stored = engine.history("legacy-1")[-1].changes["attributes"]
    assert sorted(stored) == ["dispatched_by", "misdirects", "routing", "subtasks"]


def test_stored_json_keeps_records_inside_attributes_and_reads_back_the_same() -> None:
    case = from_stored({**old_shape_body(), "version": 1})
    data = to_stored(case)
    for name in ("paused", "subtasks", "routing", "misdirects", "dispatched_by"):
        assert name not in data
    assert data["attributes"] == old_shape_body()["attributes"]
    assert data["deadline"]["extensions"] == ["1 working day"]
    assert from_stored(data) == case
    assert to_stored(from_stored(data)) == data


def test_a_case_as_json_shows_its_records_as_fields() -> None:
    case = from_stored({**old_shape_body(), "version": 1})
    data = case.model_dump(mode="json")
    assert data["paused"] == "info"
    assert data["routing"]["reason"] == "street owns it"
    assert data["attributes"] == {"question": "which side?"}
    assert Case.model_validate_json(case.model_dump_json()) == case


def test_cleared_records_leave_no_trace_in_attributes() -> None:
    case = from_stored({**old_shape_body(), "version": 1})
    cleared = case.model_copy(update={"paused": None, "subtasks": (), "routing": None})
    attributes = to_stored(cleared)["attributes"]
    assert sorted(attributes) == ["dispatched_by", "misdirects", "question"]


def test_a_subtask_is_stored_with_only_what_it_was_given() -> None:
    task = Subtask(unit="ROADS", status="waiting", due_at=None)
    case = from_stored({**old_shape_body(), "version": 1}).model_copy(update={"subtasks": (task,)})
    assert to_stored(case)["attributes"]["subtasks"] == [
        {"unit": "ROADS", "status": "waiting", "due_at": None}
    ]


def test_pending_requests_and_an_arbitrated_unit_are_fields_stored_in_attributes() -> None:
    body = old_shape_body()
    body["attributes"] |= {
        "final_assignment": True,
        "extension_request": {"duration": "2 working days", "reason": "parts", "by": "w", "at": AT},
    }
    case = from_stored({**body, "version": 3})
    assert case.final_assignment is True
    assert case.extension_request is not None
    assert case.extension_request.by == "w"
    assert case.extension_request.model_dump()["duration"] == "2 working days"
    assert case.suspension_request is None
    assert "extension_request" not in case.attributes
    assert to_stored(case)["attributes"] == body["attributes"]
    assert case.recorded()["extension_request"] == body["attributes"]["extension_request"]


def test_a_requested_extension_is_granted_from_its_typed_record() -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=clock)
    crew = Actor("crew-1", units={"WATER"})
    case = engine.report(Actor("citizen-1"), description="pipe", category="01.01")
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="WATER")
    engine.trigger(case.id, "accept", by=crew)
    due = engine.get(case.id, viewer=DISPATCHER).deadline
    asked = engine.trigger(
        case.id, "request_extension", by=crew, duration="2 working days", reason="parts"
    )
    assert asked.extension_request is not None
    assert asked.extension_request.by == "crew-1"
    with pytest.raises(GuardRejected, match="already pending"):
        engine.trigger(
            case.id, "request_extension", by=crew, duration="1 working day", reason="more"
        )
    granted = engine.trigger(case.id, "approve_extension", by=DISPATCHER)
    assert granted.extension_request is None
    assert due is not None
    assert granted.deadline is not None
    assert granted.deadline.due_at - due.due_at == timedelta(days=2)
    assert engine.verify(case.id).ok


def test_a_workflow_marks_the_arbitration_flag_only_true_or_null(tmp_path: Path) -> None:
    text = files("closedloop.workflows").joinpath("standard.yaml").read_text(encoding="utf-8")
    assert "marks: {final_assignment: true}" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("{final_assignment: true}", "{final_assignment: settled}"))
    with pytest.raises(InvalidWorkflow, match="'final_assignment' takes only true or null"):
        Workflow.from_yaml(bad)


def test_an_unshared_copy_changes_nothing_of_the_case_it_was_made_from() -> None:
    # The SQL store hands out such copies of the cases it keeps for later readers.
    body = old_shape_body()
    body["counters"] = {"returns": 1}
    body["attributes"] = {
        **body["attributes"],
        "tags": ["a"],
        "extension_request": {"by": "u-1", "at": AT, "duration": "1 day", "why": {"n": [1]}},
    }
    kept = from_stored({**body, "version": 3})
    before = kept.model_dump_json()
    copy = unshared(kept)
    assert copy == kept
    assert copy.model_fields_set == kept.model_fields_set
    assert copy.extension_request is not None
    copy.counters["returns"] = 2
    copy.attributes["tags"].append("b")
    copy.extension_request.why["n"].append(2)
    assert kept.model_dump_json() == before
