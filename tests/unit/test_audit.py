"""The audit trail: one event per change, a hash chain that catches tampering, replay."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, datetime

from closedloop import Case, Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.sqlalchemy import rows as sql_rows
from closedloop.engine import audit
from closedloop.engine.audit import GENESIS, body, replay
from closedloop.engine.model import BODY_EXCLUDE, AuditEvent, replaced, to_stored
from closedloop.testing import ManualClock
from closedloop.testing.contract.base import new_case, revise
from tests.cast import CITIZEN, DISPATCHER, STREET, WATER


def closed_case(engine: Engine) -> Case:
    case = engine.report(
        CITIZEN,
        description="污水外溢 sewage overflowing",
        location={"address": "2 Oak St", "area": "D1.S1.C1"},
        contact={"name": "王小明", "phone": "13900001111"},
    )
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="urgent")
    case = engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water", co_units=["street_s1"])
    case = engine.trigger(case.id, "accept", by=WATER)
    case = engine.trigger(case.id, "request_info", by=WATER, question="Which drain?")
    case = engine.trigger(case.id, "provide_info", by=CITIZEN, info="The one by the school")
    case = engine.trigger(case.id, "complete_subtask", by=STREET, result="Road cordoned off")
    case = engine.trigger(case.id, "submit_result", by=WATER, result="Pipe cleared")
    case = engine.trigger(case.id, "feedback", by=DISPATCHER, message="Cleared")
    return engine.trigger(case.id, "confirm", by=CITIZEN, rating="satisfied")


def rows(engine: Engine, case_id: str) -> list[AuditEvent]:
    store = engine.store
    assert isinstance(store, InMemoryStore)
    return store._records.events[case_id]


def test_each_change_is_one_chained_event(memory_engine: Engine) -> None:
    case = closed_case(memory_engine)
    events = memory_engine.history(case.id)
    assert [e.seq for e in events] == list(range(1, case.version + 1))
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert [e.trigger for e in events][:3] == ["report", "classify", "dispatch"]
    assert memory_engine.verify(case.id).ok


def test_replay_rebuilds_the_stored_case(memory_engine: Engine) -> None:
    case = closed_case(memory_engine)
    rebuilt = replay(memory_engine.history(case.id))
    stored = memory_engine.get(case.id, viewer=DISPATCHER)
    assert body(rebuilt) == body(stored)
    assert rebuilt.version == stored.version == case.version
    assert rebuilt.attributes["result"] == "Pipe cleared"
    assert rebuilt.attributes["rating"] == "satisfied"
    assert [t.status for t in rebuilt.subtasks] == ["done"]


def test_contact_data_never_enters_the_trail(memory_engine: Engine) -> None:
    case = closed_case(memory_engine)
    trail = "".join(e.model_dump_json() for e in rows(memory_engine, case.id))
    assert "王小明" not in trail
    assert "13900001111" not in trail


def test_a_flipped_byte_is_detected(memory_engine: Engine) -> None:
    case = closed_case(memory_engine)
    events = rows(memory_engine, case.id)
    flipped = events[2].model_copy(update={"payload": {**events[2].payload, "unit": "watex"}})
    assert events[2].payload["unit"] == "water"
    events[2] = flipped
    report = memory_engine.verify(case.id)
    assert not report.ok
    assert "event 3: content does not match its hash (it was changed)" in report.problems


def test_a_changed_result_is_detected_even_with_a_recomputed_hash(memory_engine: Engine) -> None:
    from closedloop.engine.audit import event_hash

    case = closed_case(memory_engine)
    events = rows(memory_engine, case.id)
    forged = events[7].model_copy(update={"payload": {"result": "Nothing to do"}})
    events[7] = forged.model_copy(update={"hash": event_hash(forged)})
    report = memory_engine.verify(case.id)
    assert not report.ok
    assert "event 9: does not link to the previous event's hash" in report.problems


def test_a_removed_event_is_detected(memory_engine: Engine) -> None:
    case = closed_case(memory_engine)
    del rows(memory_engine, case.id)[4]
    problems = memory_engine.verify(case.id).problems
    assert "event 5: has sequence 6 (an event was removed or moved)" in problems


def test_a_removed_last_event_is_detected(memory_engine: Engine) -> None:
    case = closed_case(memory_engine)
    rows(memory_engine, case.id).pop()
    problems = memory_engine.verify(case.id).problems
    assert problems == (
        f"the case is at version {case.version} but {case.version - 1} events are stored",
    )


def test_reordered_events_are_detected(memory_engine: Engine) -> None:
    case = closed_case(memory_engine)
    events = rows(memory_engine, case.id)
    events[2], events[3] = events[3], events[2]
    problems = memory_engine.verify(case.id).problems
    assert "event 3: has sequence 4 (an event was removed or moved)" in problems
    assert "event 4: has sequence 3 (an event was removed or moved)" in problems


def test_an_untouched_trail_verifies_and_reports_its_length(memory_engine: Engine) -> None:
    case = closed_case(memory_engine)
    report = memory_engine.verify(case.id)
    assert (report.ok, report.events, report.problems) == (True, case.version, ())
    assert bool(report)


def test_a_body_read_back_keeps_its_own_json_types_beside_a_lookalike_written_lately() -> None:
    # Two stores in one process (two tenants) hold a case of the same id and version;
    # one wrote {"flag": 1}, the other stores {"flag": true}. Reading the second must
    # not take the first's body for its own: its next write keeps true.
    at = datetime(2026, 1, 5, 9, tzinfo=UTC)
    fields = {
        "id": "2026-0001",
        "workflow": "standard",
        "state": "reported",
        "version": 3,
        "reported_at": at,
        "updated_at": at,
        "reporter_id": "r",
        "channel": "hotline",
        "description": "Pipe burst",
    }
    theirs = Case(**fields, attributes={"flag": True})
    stored = json.dumps(to_stored(theirs, exclude=BODY_EXCLUDE))
    sql_rows.case_values(Case(**fields, attributes={"flag": 1}))  # the other store's write
    read = sql_rows.case_from_row(stored, 3)
    after = replaced(read, {"state": "classified", "version": 4})
    assert audit.changes(read, after) == {"state": "classified"}
    written = json.loads(json.dumps(sql_rows.case_values(after)["body"]))
    assert written["attributes"] == {"flag": True}
    assert type(written["attributes"]["flag"]) is bool


def test_a_zero_and_a_negative_zero_differ_as_their_json_does() -> None:
    assert json.dumps([0.0, -0.0]) == "[0.0, -0.0]"
    assert audit.differs(0.0, -0.0)
    assert audit.differs({"deep": [{"x": -0.0}]}, {"deep": [{"x": 0.0}]})
    assert not audit.differs(-0.0, -0.0 * 1)
    assert not audit.differs({"x": [0.0, 2.5]}, {"x": [0.0, 2.5]})


def test_what_a_host_changes_in_the_events_and_cases_it_gets_changes_nothing_kept(
    engine: Engine,
) -> None:
    case = engine.report(
        CITIZEN,
        description="Burst pipe",
        location={"address": "9 Pine Rd", "area": "D1.S1.C1"},
        media=[{"url": "https://x.test/1.jpg", "content_type": "image/jpeg", "sha256": "0" * 64}],
    )
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02")
    case = engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water", co_units=["street_s1"])
    kept = [event.model_dump() for event in engine.history(case.id)]
    for event in engine.history(case.id):
        event.changes["state"] = "changed"
        event.changes.setdefault("attributes", {})["host"] = 1
        for value in (*event.changes.values(), *event.payload.values()):
            if isinstance(value, dict):
                value["host"] = 1
            if isinstance(value, list) and value and isinstance(value[0], dict):
                value[0]["url"] = "https://changed.test/"
        event.payload["host"] = 1
    case.attributes["host"] = [1]
    case.counters["host"] = 1
    assert [event.model_dump() for event in engine.history(case.id)] == kept
    assert engine.verify(case.id).ok
    again = engine.trigger(case.id, "accept", by=WATER, idempotency_key="k1")
    again.attributes["host"] = 2
    assert (
        "host" not in engine.trigger(case.id, "accept", by=WATER, idempotency_key="k1").attributes
    )
    case = engine.trigger(case.id, "request_info", by=WATER, question="Which drain?")
    changes = engine.history(case.id)[-1].changes  # against the case as written
    assert "host" not in json.dumps(changes)
    assert changes["attributes"] == {**case.recorded(), "question": "Which drain?"}
    assert "host" not in case.attributes
    assert "host" not in case.counters
    assert engine.verify(case.id).ok


def test_a_sealed_event_shares_nothing_with_the_bodies_kept_for_the_next_command() -> None:
    case, first = new_case("c1", attributes={"tags": ["a"]})
    second_case, _ = revise(case, first, attributes={"tags": ["a", "b"], "deep": {"n": 1}})
    event = audit.seal(
        case_id="c1",
        seq=2,
        at=second_case.updated_at,
        actor="host",
        role=None,
        trigger="revise",
        from_state="reported",
        to_state="reported",
        payload={"nested": {"tags": ["a"]}},
        reason=None,
        changes=audit.changes(case, second_case),
        prev_hash=first.hash,
    )
    event.changes["attributes"]["tags"].append("host")
    event.changes["attributes"]["deep"]["n"] = 2
    assert audit.body(second_case)["attributes"] == {"tags": ["a", "b"], "deep": {"n": 1}}
    third, _ = revise(second_case, event, attributes={"tags": ["a", "b"], "deep": {"n": 1}})
    assert "attributes" not in audit.changes(second_case, third)
    assert audit.hashed_json(event) is None  # changed since it was sealed: encoded anew


def test_an_event_hashes_the_json_that_json_dumps_writes_with_sorted_keys() -> None:
    values = {
        "small": 1e-07,
        "least": 5e-324,
        "edge": 1e-4,
        "big": 1e16,
        "huge": -1.5e300,
        "zero": -0.0,
        "whole": 2**70,
        "text": 'é中"\\/\n\x00\x7f\u2028\U0001f600',
        "nested": {"b": [1, {"d": 2.5, "c": None}, []], "a": True, "": {}},
    }
    plain = {k: v for k, v in values.items() if k not in ("small", "least", "big", "huge")}
    at = datetime(2026, 1, 5, 9, 30, 0, 120000, tzinfo=UTC)
    for payload, changes in [
        ({}, {"z": plain, "a": [plain["nested"]]}),
        ({"only": plain["nested"]}, {"z": plain}),
        (plain, {"z": values, "a": [values["nested"]]}),
        (values, {"z": plain}),
    ]:
        event = audit.seal(
            case_id="c1",
            seq=2,
            at=at,
            actor="host",
            role=None,
            trigger="revise",
            from_state="reported",
            to_state="reported",
            payload=payload,
            reason="why",
            changes=changes,
            prev_hash=GENESIS,
        )
        fields = {
            **event.model_dump(mode="json", exclude={"hash", "sealed"}),
            "payload": payload,
        }
        expected = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert fields["at"] == "2026-01-05T09:30:00.120000Z"
        assert event.hash == hashlib.sha256(expected.encode("utf-8")).hexdigest()
        assert audit.event_hash(event) == event.hash
        assert list(event.payload) == list(payload)  # as given
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert audit.canonical_json(values) == canonical.encode("utf-8")


def test_the_bodies_kept_are_those_used_last() -> None:
    cases = [new_case(f"c{n}")[0] for n in range(audit._KEPT_BODIES + 1)]
    first = audit.body(cases[0])
    for case in cases[1:-1]:
        audit.body(case)
    assert audit.body(cases[0]) is first  # used again: now the last to go
    audit.body(cases[-1])
    assert audit.known_body(cases[0]) is first
    assert audit.known_body(cases[1]) is None  # the least recently used went
    assert len(audit._BODIES) == len(audit._WRITTEN) == audit._KEPT_BODIES


def test_a_warned_or_breached_clock_is_recorded_as_encoding_the_case_gives_it() -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=clock)
    case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    for trigger in ("warn", "breach"):
        due = engine.next_due_at()
        assert due is not None
        clock.set(due)
        assert engine.tick().applied == 1
        event = engine.history(case.id)[-1]
        assert event.trigger == trigger
        stored = to_stored(engine.get(case.id, viewer=DISPATCHER), exclude=BODY_EXCLUDE)
        assert json.dumps(event.changes["deadline"]) == json.dumps(stored["deadline"])
        assert json.dumps(body(engine.get(case.id, viewer=DISPATCHER))) == json.dumps(stored)
    assert engine.verify(case.id).ok
