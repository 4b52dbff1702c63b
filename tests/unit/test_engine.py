"""The Engine's promises: typed refusals that change nothing, versions, idempotency, privacy."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from closedloop import (
    Actor,
    Case,
    CaseNotFound,
    ClosedLoopError,
    ConcurrentModification,
    Engine,
    GuardRejected,
    IdempotencyConflict,
    TransitionNotAllowed,
    ValidationError,
    workflows,
)
from closedloop.adapters.memory import InMemoryStore
from closedloop.errors import NaiveDatetime
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, OTHER_CITIZEN, STREET, SUPERVISOR, WATER

PHONE = "13812345678"


def new_case(engine: Engine, **kwargs: Any) -> Case:
    fields: dict[str, Any] = {
        "description": "井盖缺失 manhole cover missing",
        "location": {"address": "9 Pine Rd", "area": "D1.S1.C1.G01"},
        "contact": {"name": "李雷", "phone": PHONE, "email": "lilei@example.org"},
    }
    return engine.report(CITIZEN, **{**fields, **kwargs})


def dispatched(engine: Engine) -> Case:
    case = new_case(engine)
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    return engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water", co_units=["street_s1"])


def snapshot(engine: Engine, case_id: str) -> tuple[Case, int]:
    return engine.get(case_id, viewer=DISPATCHER), len(engine.history(case_id))


# -- refusals change nothing -------------------------------------------------------------


def test_undeclared_trigger_names_state_and_allowed(engine: Engine) -> None:
    case = new_case(engine)
    before = snapshot(engine, case.id)
    with pytest.raises(TransitionNotAllowed) as raised:
        engine.trigger(case.id, "accept", by=DISPATCHER)
    error = raised.value
    assert (error.state, error.trigger) == ("reported", "accept")
    assert error.allowed == ("answer", "cancel", "classify", "merge", "reject", "resolve_on_spot")
    assert "allowed from 'reported'" in str(error)
    assert snapshot(engine, case.id) == before


def test_guard_refusal_says_why_and_changes_nothing(engine: Engine) -> None:
    case = dispatched(engine)
    case = engine.trigger(case.id, "accept", by=WATER)
    engine.trigger(
        case.id, "request_extension", by=WATER, duration="2 working days", reason="parts"
    )
    before = snapshot(engine, case.id)
    with pytest.raises(GuardRejected) as raised:
        engine.trigger(case.id, "request_extension", by=WATER, duration="1 working day", reason="x")
    assert raised.value.guard == "no_extension_pending"
    assert "an extension request is already pending" in str(raised.value)
    assert snapshot(engine, case.id) == before


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({}, "category", "is required"),
        ({"category": "01.01", "colour": "red"}, "colour", "is not a field of 'classify'"),
        ({"category": "01 01"}, "category", "is not a code"),
        ({"category": "01.01", "urgency": "whenever"}, "urgency", "is not one of"),
        ({"category": 7}, "category", "is not a code"),
    ],
)
def test_bad_payload_is_refused_naming_the_field(
    engine: Engine, payload: dict[str, Any], field: str, message: str
) -> None:
    case = new_case(engine)
    before = snapshot(engine, case.id)
    with pytest.raises(ValidationError) as raised:
        engine.trigger(case.id, "classify", by=DISPATCHER, **payload)
    assert field in raised.value.fields
    assert message in str(raised.value)
    assert snapshot(engine, case.id) == before


def test_oversized_and_deep_payloads_are_refused(engine: Engine) -> None:
    case = new_case(engine)
    with pytest.raises(ValidationError, match="at most 16384 allowed"):
        engine.trigger(case.id, "reject", by=DISPATCHER, reason="x" * 20_000)
    deep: Any = "x"
    for _ in range(10):
        deep = {"d": deep}
    with pytest.raises(ValidationError, match="nested deeper"):
        engine.trigger(case.id, "reject", by=DISPATCHER, reason=deep)
    assert engine.get(case.id, viewer=DISPATCHER).version == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"reason": "\x01" * 2731},  # 6 bytes each escaped: 16,386 + 12
        {"reason": "\U0001f600" * 4096},  # 4 bytes each: 16,384 + 12
        {f"f{n:04}": 10**12 for n in range(1000)},  # unknown fields, 20 bytes each
        {f"f{n:04}": None for n in range(1400)},
    ],
)
def test_a_payload_of_plain_values_over_the_size_limit_is_refused(
    engine: Engine, payload: dict[str, Any]
) -> None:
    case = new_case(engine)
    with pytest.raises(ValidationError, match="at most 16384 allowed"):
        engine.trigger(case.id, "reject", by=DISPATCHER, **payload)
    assert engine.get(case.id, viewer=DISPATCHER).version == 1


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ("x" * 4001, "is 4001 characters long; at most 4000 allowed"),
        ("bad\x00byte", "control character U+0000"),
        ("bell\x07", "control character U+0007"),
        ("carriage\rreturn", "control character U+000D"),
        ("evil\u202etxt.exe", "bidirectional control U+202E"),
        ("lone \udc80 surrogate", "lone surrogate"),
        ("   \n\t ", "must not be empty"),
        (42, "must be text"),
    ],
)
def test_bad_report_text_is_refused(engine: Engine, description: Any, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        engine.report(CITIZEN, description=description)
    assert raised.value.fields == ("description",)
    assert message in str(raised.value)
    assert list(engine.store.case_ids()) == []


def test_report_text_is_normalised_to_nfc_and_keeps_newlines_and_tabs(engine: Engine) -> None:
    case = engine.report(CITIZEN, description="Cafe\u0301\n\tline two")
    assert case.description == "Caf\u00e9\n\tline two"
    assert engine.get(case.id, viewer=CITIZEN).description == "Caf\u00e9\n\tline two"


def test_bad_location_and_contact_list_every_field(engine: Engine) -> None:
    with pytest.raises(ValidationError) as raised:
        engine.report(
            CITIZEN,
            description="ok",
            location={"area": "no spaces allowed", "lat": 91},
            contact={"phone": "call me", "email": "nobody"},
            channel="",
        )
    assert set(raised.value.fields) == {
        "location.area", "location.lat", "contact.phone", "contact.email", "channel",
    }  # fmt: skip
    assert list(engine.store.case_ids()) == []


# -- versions and concurrency ------------------------------------------------------------


def test_versions_increase_by_one_per_change(engine: Engine) -> None:
    case = dispatched(engine)
    assert case.version == 3
    assert [e.seq for e in engine.history(case.id)] == [1, 2, 3]


def test_stale_expected_version_raises_and_writes_nothing(engine: Engine) -> None:
    case = dispatched(engine)
    with pytest.raises(ConcurrentModification) as raised:
        engine.trigger(case.id, "accept", by=WATER, expected_version=2)
    assert (raised.value.expected, raised.value.actual) == (2, 3)
    assert snapshot(engine, case.id)[1] == 3
    assert engine.trigger(case.id, "accept", by=WATER, expected_version=3).version == 4


def test_two_transactions_on_one_version_cannot_both_win() -> None:
    store = InMemoryStore()
    engine = Engine(workflows.standard(), store=store, clock=ManualClock())
    case = dispatched(engine)
    first, second = store.transaction(), store.transaction()
    loaded = [tx.get_case(case.id) for tx in (first, second)]
    assert [c.version if c else None for c in loaded] == [3, 3]
    engine.trigger(case.id, "accept", by=WATER)  # a third writer commits first
    stale = loaded[0]
    assert stale is not None
    event = engine.history(case.id)[-1]
    # A stale transaction's write fails at the latest on commit.
    with pytest.raises(ConcurrentModification):
        first.update_case(stale.model_copy(update={"version": 4}), 3, event)
    second.rollback()
    assert len(engine.history(case.id)) == 4


def test_racing_threads_accept_once(engine: Engine) -> None:
    case = dispatched(engine)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def accept() -> None:
        barrier.wait()
        try:
            engine.trigger(case.id, "accept", by=WATER, expected_version=3)
            outcomes.append("won")
        except (ConcurrentModification, TransitionNotAllowed):
            outcomes.append("lost")

    threads = [threading.Thread(target=accept) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert [e.trigger for e in engine.history(case.id)].count("accept") == 1


# -- idempotency -------------------------------------------------------------------------


def test_repeated_key_returns_the_first_result(engine: Engine) -> None:
    case = dispatched(engine)
    first = engine.trigger(case.id, "accept", by=WATER, idempotency_key="k-1")
    again = engine.trigger(case.id, "accept", by=WATER, idempotency_key="k-1")
    assert again == first
    assert len(engine.history(case.id)) == 4


def test_repeated_key_with_another_payload_conflicts(engine: Engine) -> None:
    case = new_case(engine)
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01", idempotency_key="k-2")
    with pytest.raises(IdempotencyConflict) as raised:
        engine.trigger(case.id, "classify", by=DISPATCHER, category="02.01", idempotency_key="k-2")
    assert raised.value.key == "k-2"
    assert engine.get(case.id, viewer=DISPATCHER).category == "01.01"


def test_repeated_report_key_opens_one_case(engine: Engine) -> None:
    first = new_case(engine, idempotency_key="call-77")
    again = new_case(engine, idempotency_key="call-77")
    assert again.id == first.id
    assert list(engine.store.case_ids()) == [first.id]
    with pytest.raises(IdempotencyConflict):
        new_case(engine, idempotency_key="call-77", description="another matter")


# -- who sees what -----------------------------------------------------------------------


def test_contact_in_full_for_reporter_dispatcher_and_lead_unit(engine: Engine) -> None:
    case = dispatched(engine)
    for viewer in (CITIZEN, DISPATCHER, WATER):
        contact = engine.get(case.id, viewer=viewer).contact
        assert contact is not None
        assert (contact.name, contact.phone) == ("李雷", PHONE)


def test_contact_masked_for_everyone_else(engine: Engine) -> None:
    case = dispatched(engine)
    for viewer in (SUPERVISOR, STREET):  # a supervisor; a co-unit member
        contact = engine.get(case.id, viewer=viewer).contact
        assert contact is not None
        assert (contact.name, contact.phone, contact.email) == (
            "李*",
            "138****5678",
            "l***@example.org",
        )


def test_a_case_you_may_not_see_is_indistinguishable_from_a_missing_one(engine: Engine) -> None:
    case = new_case(engine)
    outsiders = (OTHER_CITIZEN, WATER, Actor("clerk", roles={"unknown_role"}))
    for actor in outsiders:
        with pytest.raises(CaseNotFound) as hidden:
            engine.get(case.id, viewer=actor)
        with pytest.raises(CaseNotFound) as missing:
            engine.get("no-such-case", viewer=actor)
        assert str(hidden.value).replace(case.id, "X") == str(missing.value).replace(
            "no-such-case", "X"
        )
        with pytest.raises(CaseNotFound):
            engine.trigger(case.id, "cancel", by=actor)
        with pytest.raises(CaseNotFound):
            engine.allowed(case.id, actor)


def test_personal_data_stays_out_of_errors(engine: Engine) -> None:
    case = new_case(engine)
    with pytest.raises(ClosedLoopError) as raised:
        engine.trigger(case.id, "confirm", by=CITIZEN)
    assert PHONE not in str(raised.value)
    assert "李雷" not in str(raised.value)


def test_changing_a_returned_case_changes_nothing_stored(engine: Engine) -> None:
    case = engine.trigger(new_case(engine).id, "classify", by=DISPATCHER, category="01.01")
    case.attributes["written_by_the_caller"] = True
    case.counters["invented"] = 7
    stored = engine.get(case.id, viewer=DISPATCHER)
    assert "written_by_the_caller" not in stored.attributes
    assert "invented" not in stored.counters
    assert engine.verify(case.id).ok


def test_allowed_lists_what_this_actor_may_fire_now(engine: Engine) -> None:
    case = dispatched(engine)
    assert engine.allowed(case.id, WATER) == ("accept", "return")
    assert engine.allowed(case.id, DISPATCHER) == ()
    assert engine.allowed(case.id, CITIZEN) == ("cancel",)


def test_allowed_offers_a_trigger_whose_guard_waits_for_its_fields(engine: Engine) -> None:
    # No responsibility list: dispatch can only go ahead once the dispatcher names the
    # unit, so it is offered, and its guard decides when it is fired.
    case = engine.trigger(new_case(engine).id, "classify", by=DISPATCHER, category="01.01")
    assert engine.allowed(case.id, DISPATCHER) == ("merge", "dispatch")
    with pytest.raises(GuardRejected, match="name the unit"):
        engine.trigger(case.id, "dispatch", by=DISPATCHER)
    assert engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water").state == "assigned"


# -- time ----------------------------------------------------------------------------------


class NaiveClock:
    def now(self) -> datetime:
        return datetime(2026, 1, 5, 9, 0)


def test_a_naive_clock_is_refused() -> None:
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=NaiveClock())
    with pytest.raises(NaiveDatetime):
        engine.report(CITIZEN, description="x")


def test_manual_clock_moves_forward_only() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 8, tzinfo=UTC))
    assert clock.advance(hours=2) == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert clock.set(datetime(2026, 3, 2, tzinfo=UTC)) == datetime(2026, 3, 2, tzinfo=UTC)
    with pytest.raises(ValidationError):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(NaiveDatetime):
        clock.set(datetime(2026, 3, 3))


def test_events_carry_the_clock_time(engine: Engine, clock: ManualClock) -> None:
    case = new_case(engine)
    clock.advance(minutes=30)
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    assert case.updated_at - case.reported_at == timedelta(minutes=30)
    assert engine.history(case.id)[-1].at == clock.now()


@pytest.mark.parametrize("worker_id", [123, "", "tick\ner"])
def test_a_worker_id_that_cannot_name_a_lease_is_refused(worker_id: Any) -> None:
    # Every store writes it on the leases it takes, beside the lease's token.
    with pytest.raises(ValidationError) as refused:
        Engine(workflows.standard(), store=InMemoryStore(), worker_id=worker_id)
    assert "worker_id" in str(refused.value)
    assert "printable" in str(refused.value) or "text" in str(refused.value)
