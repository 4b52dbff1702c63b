"""The APScheduler ticker with a real BackgroundScheduler, for a few seconds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from apscheduler.schedulers.background import BackgroundScheduler

from closedloop import Engine, Workflow, workflows
from closedloop.adapters.apscheduler import Ticker
from closedloop.adapters.memory import InMemoryStore
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def fired(engine: Engine, case_id: str) -> list[str]:
    return [e.trigger for e in engine.history(case_id) if e.actor == "system"]


def test_interval_sweeps_apply_due_timers() -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=clock)
    case = engine.report(CITIZEN, description="Broken bench")
    clock.advance(hours=3)  # past the 2-hour classify clock: warning and breach are due
    ticker = Ticker(engine, interval=0.2)
    ticker.start()
    try:
        assert wait_until(lambda: fired(engine, case.id) == ["warn", "breach"])
        runs = ticker.runs
        assert wait_until(lambda: ticker.runs >= runs + 2)
        assert fired(engine, case.id) == ["warn", "breach"]  # sweeps again, fires nothing twice
    finally:
        ticker.shutdown()


def test_wakes_at_the_next_due_time_between_sweeps() -> None:
    data = yaml.safe_load(workflows.standard_yaml())
    for clock_spec in data["clocks"]:
        if clock_spec["name"] == "classify":
            clock_spec["duration"] = "0.05 minutes"  # three seconds
    engine = Engine(Workflow.from_dict(data), store=InMemoryStore())  # the system clock
    case = engine.report(CITIZEN, description="Loose paving stone")
    ticker = Ticker(engine, interval=60)
    ticker.start()
    try:
        assert fired(engine, case.id) == []
        assert wait_until(lambda: "breach" in fired(engine, case.id), seconds=8)
        deadline = engine.history(case.id)[0].at + timedelta(seconds=3)
        breach = next(e for e in engine.history(case.id) if e.trigger == "breach")
        assert breach.at >= deadline
    finally:
        ticker.shutdown()


class FailingOnceStore(InMemoryStore):
    """A store whose first claim fails, as a database connection might."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def claim_due(self, *args: object, **kwargs: object) -> list:  # type: ignore[override,type-arg]
        if self.failures:
            self.failures -= 1
            raise RuntimeError("connection reset")
        return super().claim_due(*args, **kwargs)  # type: ignore[arg-type]


def test_an_error_in_one_sweep_is_logged_and_the_next_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    engine = Engine(workflows.standard(), store=FailingOnceStore(), clock=clock)
    case = engine.report(CITIZEN, description="Graffiti on the wall")
    clock.advance(hours=3)
    ticker = Ticker(engine, interval=0.2)
    with caplog.at_level(logging.ERROR, logger="closedloop.ticker"):
        ticker.start()
        try:
            assert wait_until(lambda: fired(engine, case.id) == ["warn", "breach"])
        finally:
            ticker.shutdown()
    assert any("sweep failed" in r.message and r.exc_info for r in caplog.records)


def test_the_wake_up_is_planned_on_the_engines_clock() -> None:
    clock = ManualClock(datetime(2020, 6, 1, 9, tzinfo=UTC))  # long past: only its own time counts
    engine = Engine(workflows.standard(), store=InMemoryStore(), clock=clock)
    case = engine.report(CITIZEN, description="Blocked drain")
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    scheduler = BackgroundScheduler(timezone=UTC)  # never started: the test sweeps by hand
    ticker = Ticker(engine, interval=3 * 3600, scheduler=scheduler)
    before = datetime.now(UTC)
    ticker.sweep()
    after = datetime.now(UTC)
    wake = scheduler.get_job("closedloop-wake")
    assert wake is not None
    # the sign-for warning falls due 2 h 48 min after dispatch, on the engine's clock
    until = timedelta(hours=2, minutes=48)
    assert before + until <= wake.trigger.run_date <= after + until
    assert ticker.runs == 1
