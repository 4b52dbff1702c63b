"""The library's worker loop: ticks, delivers, sleeps until the next due time, stops."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from closedloop import Engine, StoreError, ValidationError, Worker, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.ports import DuePoint, Notification
from closedloop.engine.worker import MIN_PAUSE
from closedloop.testing import ManualClock, RecordingNotifier
from tests.cast import CITIZEN, DISPATCHER

HOUR = timedelta(hours=1)
START = datetime(2026, 1, 5, 9, tzinfo=UTC)


def dispatched(engine: Engine, count: int = 1) -> list[str]:
    """Cases given to the water unit at the clock's time: 4 hours to sign for each."""
    ids = []
    for number in range(count):
        case = engine.report(CITIZEN, description=f"Leaking hydrant {number}")
        engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
        engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
        ids.append(case.id)
    return ids


class Sleeps:
    """A ``wait`` that moves the manual clock instead of sleeping, and stops the worker
    after a number of sleeps."""

    def __init__(self, clock: ManualClock, rounds: int) -> None:
        self.clock = clock
        self.rounds = rounds
        self.pauses: list[timedelta] = []
        self.worker: Worker | None = None

    def __call__(self, pause: timedelta) -> None:
        self.pauses.append(pause)
        if len(self.pauses) == self.rounds and self.worker is not None:
            self.worker.stop()
        self.clock.advance(pause)


def test_rounds_tick_deliver_and_sleep_until_the_next_due_time_on_the_engines_clock() -> None:
    clock, notifier = ManualClock(START), RecordingNotifier()
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=clock, notifier=notifier)
    (case_id,) = dispatched(engine)
    sleeps = Sleeps(clock, rounds=6)
    worker = Worker(engine, interval=HOUR, wait=sleeps)
    sleeps.worker = worker
    worker.run()
    # warning at 70 % of the 4-hour sign-for clock (11:48), breach and escalation at 13:00
    minutes = timedelta(minutes=1)
    assert sleeps.pauses == [HOUR, HOUR, 48 * minutes, HOUR, 12 * minutes, HOUR]
    fired = [(e.trigger, e.at) for e in engine.history(case_id) if e.actor == "system"]
    assert fired == [
        ("warn", datetime(2026, 1, 5, 11, 48, tzinfo=UTC)),
        ("breach", datetime(2026, 1, 5, 13, tzinfo=UTC)),
        ("escalate", datetime(2026, 1, 5, 13, tzinfo=UTC)),
    ]
    assert [n.event for n in notifier.sent] == ["dispatch", "warn", "breach", "escalate"]
    assert (worker.applied, worker.delivered) == (3, 4)


def test_stop_during_a_send_finishes_that_notification_and_claims_no_more() -> None:
    clock = ManualClock(START)
    worker: Worker | None = None
    sent: list[str] = []

    class StoppingNotifier:
        def send(self, notification: Notification) -> None:
            sent.append(notification.id)
            assert worker is not None
            worker.stop()  # as a signal arriving mid-send would

    engine = Engine(
        workflows.standard(), store=InMemoryStore(), clock=clock, notifier=StoppingNotifier()
    )
    dispatched(engine, count=3)
    worker = Worker(engine, interval=HOUR, wait=lambda pause: pytest.fail("slept after stop"))
    worker.run()
    assert len(sent) == 1
    assert worker.delivered == 1
    later = RecordingNotifier()
    other = Engine(workflows.standard(), store=engine.store, clock=clock, notifier=later)
    assert other.deliver().delivered == 2  # the others were never claimed: no lease holds them


def test_a_tick_asked_to_stop_applies_what_it_holds_and_claims_nothing_more() -> None:
    clock = ManualClock(START)
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=clock)
    dispatched(engine, count=3)
    clock.advance(hours=3)  # each case's warning is due
    asked: list[bool] = []

    def after_one_claim() -> bool:
        asked.append(True)
        return len(asked) > 1

    assert engine.tick(batch=1, should_stop=after_one_claim).applied == 1
    assert engine.tick(should_stop=lambda: True).applied == 0
    assert engine.tick().applied == 2


def test_a_store_error_is_reported_and_the_round_retried_after_the_interval() -> None:
    class FailingOnceStore(InMemoryStore):
        failures = 1

        def claim_due(
            self,
            now: datetime,
            *,
            owner: str,
            lease: timedelta,
            limit: int,
            workflow: str | None = None,
        ) -> list[DuePoint]:
            if self.failures:
                self.failures -= 1
                raise StoreError("connection reset")
            return super().claim_due(now, owner=owner, lease=lease, limit=limit, workflow=workflow)

    clock = ManualClock(START)
    engine = Engine(workflows.standard(), store=FailingOnceStore(), clock=clock)
    dispatched(engine)
    clock.advance(hours=3)
    errors: list[StoreError] = []
    sleeps = Sleeps(clock, rounds=2)
    worker = Worker(engine, interval=HOUR, wait=sleeps, on_error=errors.append)
    sleeps.worker = worker
    worker.run()
    assert [str(e) for e in errors] == ["connection reset"]
    assert sleeps.pauses == [HOUR, HOUR]  # retried after the interval; then nothing due
    assert worker.applied == 3  # the warning, then breach and escalation an hour later


def test_any_other_error_ends_the_run() -> None:
    class BrokenStore(InMemoryStore):
        def next_due_at(self, workflow: str | None = None) -> datetime | None:
            raise RuntimeError("a bug")

    worker = Worker(Engine(workflows.standard(), store=BrokenStore()), wait=lambda pause: None)
    with pytest.raises(RuntimeError, match="a bug"):
        worker.run()


def test_a_timer_due_but_held_by_another_worker_is_waited_on_briefly() -> None:
    clock = ManualClock(START)
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=clock)
    dispatched(engine)
    clock.advance(hours=3)
    held = engine.store.claim_due(engine.now(), owner="elsewhere", lease=HOUR, limit=10)
    assert len(held) == 1
    worker = Worker(engine, interval=HOUR)
    assert worker.run_once().timers.applied == 0
    assert worker.pause() == MIN_PAUSE


def test_without_delivery_the_outbox_is_left_alone() -> None:
    notifier = RecordingNotifier()
    engine = Engine(workflows.standard(), store=InMemoryStore(), notifier=notifier)
    dispatched(engine)
    done = Worker(engine, deliver=False).run_once()
    assert (done.deliveries.delivered, notifier.sent) == (0, [])
    assert Worker(engine).run_once().deliveries.delivered == 1


def test_by_default_the_worker_sleeps_on_its_stop_event_and_wakes_when_stopped() -> None:
    stopping = threading.Event()
    engine = Engine(workflows.standard(), store=InMemoryStore())
    worker = Worker(engine, interval=timedelta(hours=1), stopping=stopping)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    stopping.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert worker.stopping is stopping


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"interval": timedelta(0)}, "interval"),
        ({"interval": 5}, "interval"),
        ({"tick_batch": 0}, "tick_batch"),
        ({"deliver_batch": True}, "deliver_batch"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, object], field: str) -> None:
    engine = Engine(workflows.standard(), store=InMemoryStore())
    with pytest.raises(ValidationError) as refused:
        Worker(engine, **options)  # type: ignore[arg-type]
    assert refused.value.fields == (field,)


def test_the_engine_tells_its_clocks_time_in_utc() -> None:
    shanghai = datetime(2026, 3, 2, 8, tzinfo=ZoneInfo("Asia/Shanghai"))
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=ManualClock(shanghai))
    assert engine.now() == datetime(2026, 3, 2, 0, tzinfo=UTC)
    assert engine.now().tzinfo is UTC


def test_the_worker_signs_a_checkpoint_of_the_changed_cases_on_its_schedule() -> None:
    clock = ManualClock(START)
    engine = Engine(
        workflows.standard(), store=InMemoryStore(), clock=clock, checkpoint_key=b"k" * 32
    )
    first, second = dispatched(engine, 2)
    sleeps = Sleeps(clock, rounds=6)
    worker = Worker(engine, interval=HOUR, checkpoint_every=90 * timedelta(minutes=1), wait=sleeps)
    sleeps.worker = worker
    made = worker.run_once().checkpoint  # the first round checkpoints at once
    assert made is not None
    assert sorted((h.case_id, h.seq) for h in made.heads) == sorted([(first, 3), (second, 3)])
    assert worker.run_once().checkpoint is None  # not yet due
    worker.run()
    # The pauses end at each checkpoint due (10:30, when nothing had changed, then
    # 12:00) and at the warnings (11:48), which changed both cases: the 12:00
    # checkpoint signs them.
    minutes = timedelta(minutes=1)
    assert sleeps.pauses == [HOUR, 30 * minutes, HOUR, 18 * minutes, 12 * minutes, HOUR]
    assert worker.checkpoints == 2
    assert engine.verify(first).ok


def test_checkpoint_every_needs_an_engine_with_a_key() -> None:
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=ManualClock(START))
    with pytest.raises(ValidationError) as raised:
        Worker(engine, checkpoint_every=HOUR)
    assert raised.value.fields == ("checkpoint_every",)
