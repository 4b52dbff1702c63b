"""Notifications through the outbox: written with the change, delivered at least once."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from closedloop import Case, Engine, GuardRejected, NaturalCalendar, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.audit import seal
from closedloop.engine.delivery import DeliveryReport, RetryPolicy
from closedloop.engine.durations import Duration
from closedloop.engine.notifications import messages
from closedloop.engine.ports import (
    CaseStore,
    MessageBody,
    Notification,
    OutboxMessage,
    WorkCalendar,
)
from closedloop.errors import DeliveryFailed, EndpointGone, NotifierUnusable, UnknownName
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, WATER
from tests.conftest import Backend


class Inbox:
    """A notifier that keeps what it was given and fails when told to."""

    def __init__(self) -> None:
        self.received: list[Notification] = []
        self.failures: list[Exception] = []
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        with self._lock:
            if self.failures:
                raise self.failures.pop(0)
            self.received.append(notification)


def engine_on(store: CaseStore, clock: ManualClock, inbox: Inbox, **kwargs: object) -> Engine:
    return Engine(workflows.standard(), store=store, clock=clock, notifier=inbox, seed=7, **kwargs)  # type: ignore[arg-type]


def dispatched(engine: Engine) -> Case:
    case = engine.report(
        CITIZEN,
        description="井盖缺失 manhole cover missing",
        location={"address": "9 Pine Rd", "area": "D1.S1"},
        contact={"name": "李雷", "phone": "13812345678", "email": "lilei@example.org"},
    )
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    return engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")


def test_a_committed_change_is_delivered_once_with_its_id(backend: Backend) -> None:
    inbox, clock = Inbox(), ManualClock()
    engine = engine_on(backend.fresh(), clock, inbox)
    case = dispatched(engine)
    assert engine.deliver().delivered == 1
    assert engine.deliver().delivered == 0  # nothing twice
    (sent,) = inbox.received
    assert (sent.event, sent.recipient, sent.attempt) == ("dispatch", "unit:water", 1)
    assert sent.id == f"{case.id}/3/0/unit:water"
    assert "井盖缺失" in sent.body
    assert "已派至贵单位" in sent.body
    assert sent.contact is None  # units are not sent the reporter's contact data


def test_a_refused_command_writes_no_notification(backend: Backend) -> None:
    inbox, clock = Inbox(), ManualClock()
    engine = engine_on(backend.fresh(), clock, inbox)
    case = engine.report(CITIZEN, description="x")
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    with pytest.raises(GuardRejected):
        engine.trigger(case.id, "dispatch", by=DISPATCHER)  # no list and no unit
    assert engine.deliver().delivered == 0
    assert inbox.received == []


def test_the_reporter_gets_contact_data_only_at_delivery(backend: Backend) -> None:
    inbox, clock = Inbox(), ManualClock()
    store = backend.fresh()
    engine = engine_on(store, clock, inbox)
    case = dispatched(engine)
    case = engine.trigger(case.id, "accept", by=WATER)
    engine.trigger(case.id, "request_info", by=WATER, question="Which side of the road?")
    engine.deliver()
    to_reporter = [n for n in inbox.received if n.recipient == "reporter"]
    assert [n.event for n in to_reporter] == ["request_info"]
    assert to_reporter[0].contact is not None
    assert to_reporter[0].contact.email == "lilei@example.org"
    assert "13812345678" not in to_reporter[0].body


def test_failures_are_retried_with_backoff_then_dead_lettered_and_requeued(
    backend: Backend,
) -> None:
    inbox, clock = Inbox(), ManualClock()
    policy = RetryPolicy(max_attempts=3, first_delay=timedelta(minutes=1), jitter=0)
    engine = engine_on(backend.fresh(), clock, inbox, retry=policy)
    dispatched(engine)
    inbox.failures = [DeliveryFailed("notify", "m", "500")] * 3
    assert engine.deliver().retried == 1
    assert engine.deliver().retried == 0  # not before the backoff
    clock.advance(minutes=1)
    assert engine.deliver().retried == 1
    clock.advance(minutes=1, seconds=59)
    assert engine.deliver().retried == 0  # the second wait is two minutes
    clock.advance(seconds=1)
    assert engine.deliver().dead == 1
    (dead,) = engine.dead_letters()
    assert (dead.status, dead.attempts) == ("dead", 3)
    assert dead.last_error is not None
    assert "500" in dead.last_error
    clock.advance(hours=5)
    assert engine.deliver().delivered == 0  # dead letters stay dead
    engine.requeue(dead.id)
    assert engine.deliver().delivered == 1
    assert engine.dead_letters() == []
    assert inbox.received[0].id == dead.id


def test_a_gone_endpoint_is_not_retried(backend: Backend) -> None:
    inbox, clock = Inbox(), ManualClock()
    engine = engine_on(backend.fresh(), clock, inbox)
    dispatched(engine)
    inbox.failures = [EndpointGone("notify", "https://hooks.example.org/x")]
    assert engine.deliver().disabled == 1
    clock.advance(days=1)
    assert engine.deliver() == DeliveryReport()
    assert inbox.received == []
    (gone,) = engine.dead_letters()  # listed with the dead letters, and re-queued alike
    assert (gone.status, gone.attempts) == ("disabled", 1)
    engine.requeue(gone.id)
    assert engine.deliver() == DeliveryReport(delivered=1)
    assert [n.id for n in inbox.received] == [gone.id]


def test_a_plain_exception_from_a_channel_is_recorded_and_retried(backend: Backend) -> None:
    inbox, clock = Inbox(), ManualClock()
    engine = engine_on(backend.fresh(), clock, inbox)
    dispatched(engine)
    inbox.failures = [RuntimeError("socket closed")]
    assert engine.deliver().retried == 1
    clock.advance(hours=1)
    assert engine.deliver().delivered == 1


class AsyncInbox:
    """A channel written with ``async def send``: the outbox would never await it."""

    async def send(self, notification: Notification) -> None:
        raise RuntimeError("never runs")


class SendsLater:
    """A channel whose synchronous ``send`` hands back a coroutine it never awaits."""

    def send(self, notification: Notification) -> object:
        return AsyncInbox().send(notification)


def test_what_cannot_be_a_channel_is_refused_when_the_engine_is_made() -> None:
    def make(notifier: object) -> Engine:
        return Engine(workflows.standard(), store=InMemoryStore(), notifier=notifier)  # type: ignore[arg-type]

    refused = {}
    for name, given in {
        "async": AsyncInbox(),
        "object": object(),
        "dict": {"notify": 42},
        "lambda": lambda n: None,
        "class": Inbox,
    }.items():
        with pytest.raises(NotifierUnusable) as raised:
            make(given)
        assert "send(notification)" in raised.value.expected
        refused[name] = (raised.value.what, raised.value.given)
    assert refused == {
        "async": ("notifier", "an AsyncInbox whose send is async def (it would never run, "
                  "yet count as delivered)"),
        "object": ("notifier", "an object with no send method"),
        "dict": ("notifier['notify']", "an int with no send method"),
        "lambda": ("notifier", "the function '<lambda>', which has no send method"),
        "class": ("notifier", "the class Inbox, not an instance of it"),
    }  # fmt: skip
    with pytest.raises(UnknownName) as unknown:
        make({"notfy": Inbox()})
    assert (unknown.value.name, unknown.value.known) == ("notfy", ("notify",))
    make({"notify": Inbox(), "*": Inbox()})  # the workflow's channel and the rest


def test_a_send_that_returns_an_awaitable_has_delivered_nothing(backend: Backend) -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=backend.fresh(), clock=clock,
                    notifier=SendsLater(), retry=RetryPolicy(max_attempts=1))  # fmt: skip
    dispatched(engine)
    assert engine.deliver() == DeliveryReport(dead=1)
    (dead,) = engine.dead_letters()
    assert dead.last_error is not None
    assert "send returned an awaitable, so nothing was sent" in dead.last_error


class QuotingGateway:
    """Fails every message to the reporter with an error quoting their contact data."""

    def send(self, notification: Notification) -> None:
        if notification.contact is not None:
            contact = notification.contact
            raise RuntimeError(
                f"GET /sms?to={contact.phone}&name={contact.name} refused for {contact.email}"
            )


def test_a_stored_error_never_holds_the_reporters_contact_data(backend: Backend) -> None:
    engine = engine_on(
        backend.fresh(), ManualClock(), QuotingGateway(), retry=RetryPolicy(max_attempts=1)
    )  # type: ignore[arg-type]
    case = engine.trigger(dispatched(engine).id, "accept", by=WATER)
    engine.trigger(case.id, "request_info", by=WATER, question="Which side of the road?")
    assert engine.deliver() == DeliveryReport(delivered=1, dead=1)
    (letter,) = engine.dead_letters()
    assert letter.recipient == "reporter"
    assert letter.last_error == "RuntimeError: GET /sms?to=***&name=*** refused for ***"


def test_warnings_breach_and_escalation_are_told(backend: Backend) -> None:
    inbox, clock = Inbox(), ManualClock()
    engine = engine_on(backend.fresh(), clock, inbox)
    case = dispatched(engine)
    engine.trigger(case.id, "accept", by=WATER)
    clock.advance(days=10)
    engine.tick()
    engine.deliver()
    events = [(n.event, n.recipient) for n in inbox.received]
    assert ("warn", "unit:water") in events
    assert ("breach", "unit:water") in events
    assert ("escalate", "unit:water") in events
    escalation = next(n for n in inbox.received if n.event == "escalate")
    assert "level 1" in escalation.subject


def test_texts_show_the_due_time_in_the_calendars_zone_and_data_keeps_the_instant() -> None:
    inbox = Inbox()
    clock = ManualClock(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))  # 09:00 in Shanghai
    calendar = NaturalCalendar(timezone="Asia/Shanghai")
    engine = engine_on(InMemoryStore(), clock, inbox, calendar=calendar)
    case = dispatched(engine)
    case = engine.trigger(case.id, "accept", by=WATER)
    assert case.deadline is not None
    due = case.deadline.due_at
    clock.advance(days=10)
    engine.tick()
    engine.deliver()
    warning = next(n for n in inbox.received if n.event == "warn")
    shown = f"{due.astimezone(calendar.timezone):%Y-%m-%d %H:%M} (Asia/Shanghai)"
    assert shown in warning.subject
    assert shown in warning.body
    assert warning.data["due_at"] == due.isoformat()
    assert "+00:00" not in warning.body


class HostCalendar:
    """A host's own WorkCalendar: natural time, its due times shown in Urumqi."""

    name = "host-natural"
    timezone = ZoneInfo("Asia/Urumqi")
    _natural = NaturalCalendar()

    def add(self, start: datetime, duration: Duration) -> datetime:
        return self._natural.add(start, duration)

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        return self._natural.working_time(start, end)

    def advance(self, start: datetime, amount: timedelta) -> datetime:
        return self._natural.advance(start, amount)

    def fallback_days(self, start: datetime, end: datetime) -> tuple[date, ...]:
        return ()


def test_a_host_calendar_shows_due_times_in_the_zone_it_declares() -> None:
    inbox = Inbox()
    clock = ManualClock(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    calendar: WorkCalendar = HostCalendar()
    engine = engine_on(InMemoryStore(), clock, inbox, calendar=calendar)
    case = engine.trigger(dispatched(engine).id, "accept", by=WATER)
    assert case.deadline is not None
    clock.advance(days=10)
    engine.tick()
    engine.deliver()
    warning = next(n for n in inbox.received if n.event == "warn")
    due = case.deadline.due_at.astimezone(HostCalendar.timezone)
    assert f"{due:%Y-%m-%d %H:%M} (Asia/Urumqi)" in warning.body


def test_a_payload_due_at_that_is_not_an_instant_is_shown_as_given() -> None:
    engine = engine_on(InMemoryStore(), ManualClock(), Inbox())
    case = dispatched(engine).model_copy(update={"deadline": None})
    event = seal(
        case_id=case.id, seq=case.version + 1, at=case.updated_at, actor=DISPATCHER.id,
        role="dispatcher", trigger="feedback", from_state="handled",
        to_state="awaiting_confirmation", payload={"due_at": "after the holiday"},
        reason=None, changes={}, prev_hash="0" * 64,
    )  # fmt: skip
    sent = messages(engine.workflow, case, event, now=case.updated_at)
    assert sent, "the standard workflow tells the reporter about feedback"
    assert all(m.payload["data"]["due_at"] == "after the holiday" for m in sent)


def test_a_message_stored_as_a_plain_json_object_is_still_delivered(backend: Backend) -> None:
    """Rows written before the body was typed: a JSON object, ``format`` and ``data``
    missing from the oldest ones."""
    inbox, clock = Inbox(), ManualClock()
    store = backend.fresh()
    engine = engine_on(store, clock, inbox)
    at = clock.now()
    old = {
        "subject": "新派单：CL-1",
        "body": "请签收 <b>",
        "format": "html",
        "data": {"case_id": "CL-1", "event": "dispatch", "state": "assigned", "seq": "3"},
    }
    with store.transaction() as tx:
        tx.add_outbox(
            [
                OutboxMessage(
                    id=f"CL-{n}/3/0/unit:water",
                    case_id=None,
                    event="dispatch",
                    channel="webhook",
                    recipient="unit:water",
                    payload=payload,
                    next_attempt_at=at,
                    created_at=at,
                )
                for n, payload in enumerate([old, {"subject": "旧", "body": "正文"}])
            ]
        )
        tx.commit()
    assert engine.deliver().delivered == 2
    texts = {n.id: (n.subject, n.body, n.data) for n in inbox.received}
    assert texts == {
        "CL-0/3/0/unit:water": ("新派单：CL-1", "请签收 <b>", old["data"]),
        "CL-1/3/0/unit:water": ("旧", "正文", {}),
    }


def test_the_engine_stores_a_message_body_as_the_same_json_object() -> None:
    engine = engine_on(InMemoryStore(), ManualClock(), Inbox())
    case = dispatched(engine)
    event = engine.history(case.id)[-1]
    (sent,) = messages(engine.workflow, case, event, now=case.updated_at)
    assert set(sent.payload) == {"subject", "body", "format", "data"}
    assert MessageBody.from_payload(sent.payload).to_payload() == sent.payload
