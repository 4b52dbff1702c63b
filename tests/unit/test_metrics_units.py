"""Per-unit metrics on a small stream driven through the real Engine, checked by hand.

The week is Monday 2026-01-05 to Monday 2026-01-12 (UTC). The standard workflow on
the natural calendar: sign-for 4 hours, handling 5 days counted from the dispatch,
feedback 1 day, confirmation 3 days. Every case and every number of the expected tables is derived
in the comments below; ``run_week`` is also the stream the store tests replay.

    C1 water  reported Mon 09:00, signed for 10:00 (due 13:00), handling due Sat 09:00,
              closed Wed 10:00 (resolved, satisfied): on time.
    C2 water  reported Mon 09:00, signed for 15:00 (due 13:00: late), handling due Sat
              09:00, closed Sun 10:00 (resolved, basically satisfied): late, 145 h used
              of 120 h.
    C3 water→roads  dispatched to water Mon 09:00, returned 10:00, return approved
              (misdirect) 11:00 to roads (sign-for due 15:00), signed for 12:00; handling
              due Sat 11:00, extended by 1 day to Sun 11:00; open at the week's end:
              overdue, 157 h used of 144 h.
    C4 roads  signed for Mon 10:00 (due 13:00), handling due Sat 09:00; suspended Tue
              09:00 (挂账) and still suspended at the week's end.
    C5 water  signed for Mon 11:00 (due 13:00); result Tue 09:00, rejected by the
              reporter Tue 12:00 (not resolved, dissatisfied; rework: a new handling
              round, due Sun 12:00), result again and closed Wed 10:00 (resolved but
              dissatisfied): on time, reworked.
    C6 —      reported Mon 09:00, answered directly, closed Mon 15:00 (resolved,
              dissatisfied).
    C7 —      reported Mon 09:00, rejected (not a matter for the platform).
    C8 street reported the Friday before (carried over), signed for at once, handling
              due Wed 09:00; closed Tue 12:00 (not resolved, but satisfied with the
              service): on time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from closedloop import Actor, Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.ports import CaseStore
from closedloop.metrics import MetricsConfig, Period, compute, supervision_board
from closedloop.testing import ManualClock
from tests.cast import ARBITER, CITIZEN, DISPATCHER, STREET, SUPERVISOR, WATER

ROADS = Actor("roads-1", units={"roads"})
WEEK = Period.week(date(2026, 1, 5))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


Step = tuple[datetime, str, str, Actor, dict[str, Any]]
"""When, which case, which trigger (or ``report``), by whom, with what payload."""


def dispatched(when: datetime, case: str, unit: str, category: str, **report: Any) -> list[Step]:
    """Reported, classified and dispatched to ``unit`` at ``when``."""
    return [
        (when, case, "report", CITIZEN, {"description": "x", **report}),
        (when, case, "classify", DISPATCHER, {"category": category}),
        (when, case, "dispatch", DISPATCHER, {"unit": unit}),
    ]


def closed(when: datetime, case: str, unit: Actor, resolved: str, rating: str) -> list[Step]:
    """Result submitted, fed back and confirmed at ``when`` with the reporter's answers."""
    return [
        (when, case, "submit_result", unit, {"result": "done"}),
        (when, case, "feedback", DISPATCHER, {}),
        (when, case, "confirm", CITIZEN, {"resolved": resolved, "rating": rating}),
    ]


G01, G02, S2 = ({"location": {"area": a}} for a in ("D1.S1.C1.G01", "D1.S1.C1.G02", "D1.S2.C1.G01"))
APP = {"channel": "app"}
UNRESOLVED = {"resolved": "no", "rating": "dissatisfied"}
WEEK_STEPS: list[Step] = [
    *dispatched(at(2, 9), "C8", "street_s1", "02.01", **G01),  # the Friday before
    (at(2, 9), "C8", "accept", STREET, {}),
    *dispatched(at(5, 9), "C1", "water", "01.01", **G02),
    *dispatched(at(5, 9), "C2", "water", "01.01", **G02),
    *dispatched(at(5, 9), "C3", "water", "01.01", **G02),
    *dispatched(at(5, 9), "C4", "roads", "03.01", **S2, **APP),
    *dispatched(at(5, 9), "C5", "water", "01.02", **G02, **APP),
    (at(5, 9), "C6", "report", CITIZEN, {"description": "When is collection?", **APP}),
    (at(5, 9), "C6", "answer", DISPATCHER, {"answer": "Tuesdays"}),
    (at(5, 9), "C7", "report", CITIZEN, {"description": "spam"}),
    (at(5, 9), "C7", "reject", DISPATCHER, {"reason": "not a matter for the platform"}),
    (at(5, 10), "C1", "accept", WATER, {}),
    (at(5, 10), "C3", "return", WATER, {"reason_code": "wrong_function", "evidence": "a road"}),
    (at(5, 10), "C4", "accept", ROADS, {}),
    (at(5, 11), "C3", "redispatch", DISPATCHER, {"unit": "roads", "reason": "roads' surface"}),
    (at(5, 11), "C5", "accept", WATER, {}),
    (at(5, 12), "C3", "accept", ROADS, {}),
    (at(5, 15), "C2", "accept", WATER, {}),
    (at(5, 15), "C6", "confirm", CITIZEN, {"resolved": "yes", "rating": "dissatisfied"}),
    (at(6, 9), "C4", "request_suspension", ROADS, {"reason": "road works of the city"}),
    (at(6, 9), "C4", "approve_suspension", SUPERVISOR, {}),
    (at(6, 9), "C5", "submit_result", WATER, {"result": "flushed"}),
    (at(6, 9), "C5", "feedback", DISPATCHER, {}),
    (at(6, 9), "C8", "submit_result", STREET, {"result": "collected"}),
    (at(6, 9), "C8", "feedback", DISPATCHER, {}),
    (at(6, 9), "C3", "request_extension", ROADS, {"duration": "1 working day", "reason": "tar"}),
    (at(6, 9), "C3", "approve_extension", DISPATCHER, {}),
    (at(6, 12), "C5", "reject_result", CITIZEN, {"reason": "still smells", **UNRESOLVED}),
    (at(6, 12), "C8", "confirm", CITIZEN, {"resolved": "no", "rating": "satisfied"}),
    *closed(at(7, 10), "C1", WATER, "yes", "satisfied"),
    *closed(at(7, 10), "C5", WATER, "yes", "dissatisfied"),
    *closed(at(11, 10), "C2", WATER, "yes", "basically_satisfied"),
]
"""The week of the module docstring, in time order."""


def play(steps: list[Step], store: CaseStore) -> tuple[Engine, ManualClock]:
    """Run ``steps`` in order through an Engine on ``store``; case ids as the steps name them."""
    clock = ManualClock(steps[0][0])
    ids = iter([case for _, case, trigger, _, _ in steps if trigger == "report"])
    engine = Engine(workflows.standard(), store=store, clock=clock, id_factory=ids.__next__)
    for when, case, trigger, actor, payload in steps:
        clock.set(when)
        if trigger == "report":
            engine.report(actor, **payload)
        else:
            engine.trigger(case, trigger, by=actor, **payload)
    return engine, clock


def run_week(store: CaseStore) -> Engine:
    """Drive ``WEEK_STEPS`` through the Engine on ``store``; a tick on Sunday night."""
    engine, clock = play(WEEK_STEPS, store)
    clock.set(at(11, 23))
    engine.tick()  # C3's warning, breach and escalation; C4 is paused: nothing fires
    return engine


@pytest.fixture(scope="module")
def week_store() -> CaseStore:
    store = InMemoryStore()
    run_week(store)
    return store


def test_per_unit_intake_and_handling_match_the_hand_checked_table(week_store: CaseStore) -> None:
    table = compute(week_store, WEEK, by="unit")
    water, roads, street, none = (table.row(g) for g in ("water", "roads", "street_s1", "(none)"))
    assert [row.group for row in table.rows] == ["(none)", "roads", "street_s1", "water"]

    # Intake counts go to the lead unit at the end: water C1 C2 C5, roads C3 C4, none
    # C6 (answered) C7 (rejected); C8 was reported the week before.
    assert (water.reported, water.filed, water.dispatched) == (3, 3, 3)
    assert (roads.reported, roads.filed, roads.dispatched) == (2, 2, 2)
    assert (street.reported, street.filing_rate) == (0, None)
    assert (none.reported, none.filed, none.answered, none.rejected) == (2, 0, 1, 1)
    assert none.filing_rate == 0.0

    # Due this week, by the unit of the handling clock:
    # water C1 (Sat 09:00), C2 (Sat 09:00), C5 (second round, Sun 12:00): 3 due, all
    # closed; C1 and C5 on time, C2 late: closure 3/3, on time 2/3.
    assert (water.due, water.closed, water.closed_on_time) == (3, 3, 2)
    assert water.closure_rate == 1.0
    assert water.on_time_closure_rate == pytest.approx(2 / 3)
    # C2: used from the dispatch, Mon 09:00 → Sun 10:00 = 145 h of the 120 h allowed.
    assert (water.overdue, water.overdue_multiple) == (1, pytest.approx(145 / 120))
    # roads C3 (Sun 11:00, extended) and C4 (Sat 09:00, as it stood when suspended):
    # 2 due, none closed; C4 suspended; C3 overdue, from the redispatch Mon 11:00 to
    # the week's end 157 h of 144 h; 1 of 2 extended.
    assert (roads.due, roads.suspended, roads.closed, roads.closed_on_time) == (2, 1, 0, 0)
    assert (roads.closure_rate, roads.on_time_closure_rate) == (0.0, 0.0)
    assert (roads.overdue, roads.overdue_multiple) == (1, pytest.approx(157 / 144))
    assert (roads.extended, roads.extension_rate, roads.extensions) == (1, 0.5, 1)
    # street: C8 carried over, due Wed 09:00, closed Tue 12:00.
    assert (street.due, street.closed_on_time, street.on_time_closure_rate) == (1, 1, 1.0)


def test_per_unit_rework_dispatch_quality_and_three_rates(week_store: CaseStore) -> None:
    table = compute(week_store, WEEK, by="unit")
    water, roads, street, none = (table.row(g) for g in ("water", "roads", "street_s1", "(none)"))
    # Closures this week: water C1 C2 C5, street C8, none C6. Rework counts over the
    # cases due to close: water C1 C2 C5 due, C5 reworked: 1/3; street C8 due: 0/1;
    # none (C6 answered directly) has nothing due: no rate.
    assert (water.closures, water.due, water.reworked, water.reworks) == (3, 3, 1, 1)
    assert water.rework_rate == pytest.approx(1 / 3)
    assert (street.closures, street.rework_rate, none.closures) == (1, 0.0, 1)
    assert (none.due, none.rework_rate) == (0, None)

    # Dispatch quality, by the unit that held the case: water returned C3 and the
    # return was approved (a misdirect against water's name on the list, not roads').
    assert (water.returns, water.misdirects, roads.returns, roads.misdirects) == (1, 1, 0, 0)
    # Sign-for clocks due this week: water C1 (on time), C2 (late), C5 (on time); its
    # clock on C3 ended with the approved return and is left out: 2/3. roads C3 (due
    # 15:00, at 12:00) and C4 (due 13:00, at 10:00): 2/2. C8's fell due the week before.
    assert (water.sign_for_due, water.signed_on_time) == (3, 2)
    assert water.on_time_sign_for_rate == pytest.approx(2 / 3)
    assert (roads.sign_for_due, roads.on_time_sign_for_rate) == (2, 1.0)
    assert street.on_time_sign_for_rate is None

    # Three rates. Response: reported this week and not rejected/merged/cancelled;
    # every one was signed for or answered. Resolution and satisfaction over the
    # callbacks of the week, by the unit that held the case: water had four, C5's
    # send-back (no, dissatisfied), C1 (yes, satisfied), C5's confirmation (yes,
    # dissatisfied), C2 (yes, basically satisfied): resolved 3 of 4, satisfied
    # 0 + 1 + 0 + 1 = 2 of 4. Street C8: not resolved but satisfied.
    assert (water.response_base, water.responded, none.response_base) == (3, 3, 1)
    assert water.response_rate == none.response_rate == 1.0
    assert (water.resolution_base, water.resolved, water.rated, water.satisfied) == (4, 3, 4, 2)
    assert (water.resolution_rate, water.satisfaction_rate) == (0.75, 0.5)
    assert (street.resolution_rate, street.satisfaction_rate) == (0.0, 1.0)
    assert (roads.resolution_rate, roads.satisfaction_rate) == (None, None)


def test_the_total_row_adds_the_units_up(week_store: CaseStore) -> None:
    total = compute(week_store, WEEK, by="unit").total
    assert (total.reported, total.filed, total.dispatched) == (7, 5, 5)
    assert total.filing_rate == pytest.approx(5 / 7)  # 71.43 %
    # Due: water 3 + roads 2 + street 1 = 6; closed 3 + 0 + 1 = 4; on time 2 + 0 + 1 = 3.
    assert (total.due, total.closed, total.closed_on_time) == (6, 4, 3)
    assert (total.closure_rate, total.on_time_closure_rate) == (pytest.approx(4 / 6), 0.5)
    # Closures C1 C2 C5 C8 C6; C5 reworked, of the 6 due: 1/6. Six callbacks (water's
    # four, C8, C6): resolved 3 + 0 + 1 = 4 of 6, satisfied 2 + 1 + 0 = 3 of 6.
    assert (total.closures, total.reworked, total.rework_rate) == (5, 1, pytest.approx(1 / 6))
    assert (total.resolution_rate, total.satisfaction_rate) == (pytest.approx(4 / 6), 0.5)
    assert (total.sign_for_due, total.signed_on_time) == (5, 4)
    assert total.overdue_multiple == pytest.approx((145 / 120 + 157 / 144) / 2)
    assert compute(week_store, WEEK).total == total  # ungrouped: the same total


def test_leaving_suspended_cases_out_changes_the_on_time_rate_as_documented(
    week_store: CaseStore,
) -> None:
    # docs/metrics.md: on-time closure rate = closed on time / (due − suspended) when
    # exclude_suspended is set; the numerator is unchanged (a suspended case is open).
    kept = compute(week_store, WEEK).total
    left_out = compute(week_store, WEEK, config=MetricsConfig(exclude_suspended=True)).total
    assert (kept.due, kept.suspended, kept.closed_on_time) == (6, 1, 3)
    assert kept.on_time_closure_rate == 3 / 6
    assert left_out.on_time_closure_rate == 3 / (6 - 1)
    assert left_out.closure_rate == 4 / (6 - 1)
    assert left_out.due == kept.due  # the count stays; only the denominator changes
    roads = compute(week_store, WEEK, by="unit", config=MetricsConfig(exclude_suspended=True))
    assert roads.row("roads").on_time_closure_rate == 0 / (2 - 1)


def test_the_board_shows_open_cases_by_warning_flags_and_the_oldest_overdue(
    week_store: CaseStore,
) -> None:
    board = supervision_board(week_store, as_of=WEEK.end)
    # Open at the week's end: C3 (red after its breach, supervised by the escalation,
    # overdue since Sun 11:00: 13 h) and C4 (suspended: its clock stopped before due).
    assert [row.unit for row in board.rows] == ["roads"]
    roads = board.row("roads")
    assert (roads.open, roads.yellow, roads.red, roads.supervised, roads.overdue) == (2, 0, 1, 1, 1)
    assert (roads.oldest_overdue_case, roads.oldest_overdue_hours) == ("C3", 13.0)
    assert board.total == roads.model_copy(update={"unit": "(all)"})
    assert [case.case_id for case in board.flagged] == ["C3"]
    assert board.row("water").open == 0


def test_returns_arbitration_and_sign_for_after_a_second_return() -> None:
    # Mon 09:00 dispatched to water (sign-for due 13:00); water returns it at 09:30; the
    # dispatcher rejects the return at 10:00 (water again, its clock still running);
    # water returns it again at 10:30: the second return diverts to arbitration. The
    # arbiter gives it to roads at 11:00 (a new sign-for clock, due 15:00); roads
    # signs for it at 12:00.
    steps: list[Step] = [
        *dispatched(at(5, 9), "A1", "water", "01.01", **G02),
        (at(5, 9, 30), "A1", "return", WATER, {"reason_code": "other", "evidence": "e"}),
        (at(5, 10), "A1", "reject_return", DISPATCHER, {"reason": "it is water's"}),
        (at(5, 10, 30), "A1", "return", WATER, {"reason_code": "other", "evidence": "e"}),
        (at(5, 11), "A1", "arbitrate", ARBITER, {"unit": "roads", "reason": "the list"}),
        (at(5, 12), "A1", "accept", ROADS, {}),
    ]
    store = InMemoryStore()
    play(steps, store)
    table = compute(store, WEEK, by="unit")
    water, roads = table.row("water"), table.row("roads")
    # Both returns and the arbitration happened while water held the case; no return
    # was approved by a dispatcher, so there is no misdirect.
    assert (water.returns, water.misdirects, water.arbitrations) == (2, 0, 1)
    # The rejected return kept water's clock: one assignment, never signed for, ended by
    # the arbiter's decision: left out. Roads' new clock: signed for in time.
    assert (water.sign_for_due, roads.sign_for_due, roads.signed_on_time) == (0, 1, 1)
    assert (table.total.returns, table.total.arbitrations) == (2, 1)


def test_a_tables_title_names_the_period_in_its_own_zone() -> None:
    march = Period.days(date(2026, 3, 1), date(2026, 3, 31), timezone="Asia/Shanghai")
    assert march.start == datetime(2026, 2, 28, 16, tzinfo=UTC)  # stored in UTC
    assert march.label == "2026-03-01 to 2026-03-31 (Asia/Shanghai)"
    table = compute(InMemoryStore(), march)
    assert table.title == "metrics, 2026-03-01 to 2026-03-31 (Asia/Shanghai)"
    shift = Period(
        start=datetime(2026, 3, 2, 1, 30, tzinfo=UTC), end=datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    )
    assert shift.label == "2026-03-02 01:30 to 2026-03-02 09:30 (UTC)"


def test_a_case_never_signed_for_is_due_when_its_handling_time_from_the_dispatch_runs_out() -> None:
    from closedloop import Actor, Engine, workflows
    from closedloop.adapters.memory import InMemoryStore
    from closedloop.metrics import Period, compute
    from closedloop.testing import ManualClock

    store = InMemoryStore()
    clock = ManualClock(datetime(2026, 3, 2, 1, tzinfo=UTC))
    engine = Engine(workflows.standard(), store=store, clock=clock)
    dispatcher = Actor("op-1", roles=frozenset({"dispatcher"}))
    crew = Actor("crew-1", units=frozenset({"water"}))
    cases = [engine.report(Actor(f"citizen-{n}"), description="burst pipe").id for n in range(3)]
    for case_id in cases:
        engine.trigger(case_id, "classify", by=dispatcher, category="01.01")
        engine.trigger(case_id, "dispatch", by=dispatcher, unit="water")
    for case_id in cases[:2]:  # the third is never signed for
        engine.trigger(case_id, "accept", by=crew)
    clock.advance(days=20)
    total = compute(store, Period.week(date(2026, 3, 2)), as_of=clock.now()).total
    # All three had 5 days from the dispatch, to 2026-03-07: all three are due and overdue.
    assert (total.due, total.overdue, total.closed) == (3, 3, 0)
    assert (total.sign_for_due, total.signed_on_time) == (3, 2)
