"""The engine's own names are string enums whose stored form is the plain name."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from closedloop.engine.delivery import DeliveryOutcome, DeliveryReport
from closedloop.engine.kinds import EngineTrigger, TimerKind
from closedloop.engine.notification_rules import ENGINE_EVENTS
from closedloop.engine.ports import DuePoint
from closedloop.engine.ticking import TickReport, TimerOutcome

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_a_due_point_stores_its_kind_as_the_plain_name_and_reads_it_back() -> None:
    point = DuePoint(
        id="c1/handling/breach", case_id="c1", clock="handling", kind="breach", due_at=AT
    )
    assert point.kind is TimerKind.BREACH
    assert json.loads(point.model_dump_json())["kind"] == "breach"
    assert DuePoint.model_validate_json(point.model_dump_json()) == point


def test_the_engine_events_a_rule_may_name_are_the_engine_triggers() -> None:
    subtask = {"subtask_warn", "subtask_breach", "subtask_escalate"}
    merges = {"duplicate", "master_closed"}
    recount = {"deadline_recomputed"}
    privacy = {"purged"}
    expected = {"report", "warn", "breach", "escalate", *subtask, *merges, *recount, *privacy}
    assert expected == ENGINE_EVENTS
    assert {type(name) for name in ENGINE_EVENTS} == {str}
    assert set(EngineTrigger) == ENGINE_EVENTS


def test_each_outcome_counts_under_the_report_field_of_its_name() -> None:
    assert [o.value for o in TimerOutcome] == list(TickReport.__dataclass_fields__)[:3]
    assert [o.value for o in DeliveryOutcome] == list(DeliveryReport.__dataclass_fields__)
    assert DeliveryOutcome.RETRIED.status == "pending"
    assert DeliveryOutcome.DEAD.status == "dead"
