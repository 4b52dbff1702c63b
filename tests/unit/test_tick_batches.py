"""A tick applies a batch of due cases in one go, and case by case when one of them
fails: what it reports and keeps is the same either way, on every store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from closedloop import Engine, Workflow, workflows
from closedloop.engine.model import Case
from closedloop.engine.ports import CaseBatches, CaseStore, CaseTransaction
from closedloop.engine.ticking import TimerFailure
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER


def refusing_engine(store: CaseStore, clock: ManualClock) -> Engine:
    """The standard workflow whose confirmation clock expires into a refused close."""
    data = yaml.safe_load(workflows.standard_yaml())
    for clock_data in data["clocks"]:
        if clock_data["name"] == "confirmation":
            clock_data["on_expiry"] = {
                "trigger": "close_unconfirmed",
                "after": "0 hours",
                "reason": "x",
            }
    for transition in data["transitions"]:
        if transition["name"] == "close_unconfirmed":
            transition["guards"] = ["has_lead_unit"]  # an answered case has none: refused
    return Engine(Workflow.from_dict(data), store=store, clock=clock)


def test_a_refused_timer_in_a_batch_is_reported_once_and_the_others_apply(
    store: CaseStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    engine = refusing_engine(store, clock)
    answered = engine.report(CITIZEN, description="when is the bulky waste collected?")
    engine.trigger(answered.id, "answer", by=DISPATCHER, answer="Thursdays")
    others = [engine.report(CITIZEN, description=f"Pipe burst {n}").id for n in range(2)]
    # The answered case's warning, breach and (refused) expiry; the others' classify
    # clocks, warned and breached.
    clock.set(datetime(2026, 1, 8, 9, tzinfo=UTC))
    with caplog.at_level(logging.WARNING, logger="closedloop.timers"):
        report = engine.tick()
    assert (report.applied, report.stale, report.deferred) == (6, 0, 1)
    assert report.deferred_by == {TimerFailure.REFUSED: 1}
    assert caplog.text.count("not applied (refused, attempt 1)") == 1
    (stuck,) = engine.stuck_timers()
    assert (stuck.point.case_id, stuck.point.kind, stuck.attempts) == (answered.id, "expiry", 1)
    for case_id in others:
        assert [e.trigger for e in engine.history(case_id)] == ["report", "warn", "breach"]
    assert [e.trigger for e in engine.history(answered.id)][-2:] == ["warn", "breach"]
    clock.advance(timedelta(minutes=10))  # the 5-minute lease has run out
    again = engine.tick()
    assert (again.applied, again.deferred, again.deferred_by) == (0, 1, {TimerFailure.REFUSED: 1})
    assert [s.attempts for s in engine.stuck_timers()] == [2]
    for case_id in [answered.id, *others]:
        assert engine.verify(case_id).ok


def test_a_batch_applies_each_case_s_due_timers_once(store: CaseStore) -> None:
    clock = ManualClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    engine = Engine(workflows.standard(), store=store, clock=clock)
    ids = [engine.report(CITIZEN, description=f"Pipe burst {n}").id for n in range(5)]
    clock.advance(timedelta(hours=3))  # each classify clock: warned, then breached
    report = engine.tick(batch=3)
    assert (report.applied, report.stale, report.deferred) == (10, 0, 0)
    assert engine.tick().applied == 0
    for case_id in ids:
        assert [e.trigger for e in engine.history(case_id)] == ["report", "warn", "breach"]
        assert engine.verify(case_id).ok


class Meddling:
    """A store whose first ``get_cases`` lets ``meddle`` change the cases just read."""

    def __init__(self, store: CaseStore, meddle: Callable[[], object]) -> None:
        self._store = store
        self._meddle: Callable[[], object] | None = meddle

    def transaction(self, *, read_only: bool = False) -> CaseTransaction:
        tx = self._store.transaction(read_only=read_only)
        if isinstance(tx, CaseBatches) and self._meddle is not None:
            read = tx.get_cases

            def get_cases(case_ids: Sequence[str]) -> Mapping[str, Case]:
                found = read(case_ids)
                if self._meddle is not None:
                    meddle, self._meddle = self._meddle, None
                    meddle()
                return found

            tx.get_cases = get_cases  # type: ignore[method-assign]
        return tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_case_changed_while_its_batch_applies_is_applied_again_as_it_now_is(
    store: CaseStore,
) -> None:
    clock = ManualClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    engine = Engine(workflows.standard(), store=store, clock=clock)
    ids = [engine.report(CITIZEN, description=f"Pipe burst {n}").id for n in range(3)]
    due = engine.next_due_at()
    assert due is not None
    clock.set(due)  # the three classify clocks' warnings

    def classify_the_first() -> None:  # another engine's command, after the batch read
        engine.trigger(ids[0], "classify", by=DISPATCHER, category="01.02", urgency="normal")

    meddled = Engine(workflows.standard(), store=Meddling(store, classify_the_first), clock=clock)
    report = meddled.tick()
    # The first case was classified: its warning is no longer due; the others warn.
    assert (report.applied, report.stale, report.deferred) == (2, 1, 0)
    assert [e.trigger for e in engine.history(ids[0])] == ["report", "classify"]
    for case_id in ids[1:]:
        assert [e.trigger for e in engine.history(case_id)] == ["report", "warn"]
    assert meddled.tick().applied == 0
    for case_id in ids:
        assert engine.verify(case_id).ok
