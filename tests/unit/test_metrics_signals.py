"""Supervision signals on a hand-built week driven through the real Engine.

The week is Monday 2026-01-05 to Monday 2026-01-12 (UTC), the standard workflow on the
natural calendar (handling 5 days = 120 h). Every count below is derived here:

    H1 water 01.01 G01  accepted Mon 10:00 (due Sat 10:00); result Sat 00:00 (110 of
                        120 h: the last 10 %); confirmed "not resolved".
    H2 water 01.01 G01  result Sat 00:00 (last 10 %), sent back 01:00 (a rework: new
                        round), result again 02:00 (early in its round); confirmed.
    H3 water 01.01 G01  result Sat 00:00 (last 10 %); confirmed "resolved"; N1, a new
                        report of 01.01 at G01, comes on Sunday: a repeat.
    H4 water 01.01 G02  extension asked and approved Mon 11:00 (long before the due
                        time); result Tue 10:00 (24 of 120 h); confirmed.
    R1 roads 03.01      result Wed 10:00 (48 of 120 h); confirmed.
    R2 roads 03.01      extension asked Fri 12:00, 22 h before the due time (late),
                        approved; open.
    P1, P2 01.01        dispatched to water, returned by water, redispatched to roads,
                        returned by roads (a second return: arbitration); the arbiter
                        gives them to water Thu 09:00, accepted Thu 10:00; open.
    S1 street_s1 02.01  accepted Mon 10:00, then nobody acts: the Sunday tick records
                        its breach and escalations only.
    N1 —     01.01 G01  reported and classified Sun 09:00; open, not dispatched.

Results in the week: water H1 H2 H2 H3 H4 (5), roads R1 (1). In the last 10 %: water
H1 H2 H3 (3 of 5), roads 0 of 1; district 3 of 6.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from closedloop import Actor
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.engine.ports import CaseStore
from closedloop.metrics import (
    Period,
    SignalConfig,
    SignalReport,
    signals,
    supervision_board,
    to_csv,
    to_json,
)
from closedloop.metrics.signals import (
    DEADLINE_HUGGING,
    EXTENSION_HABIT,
    HOLLOW_CLOSURES,
    LATE_EXTENSIONS,
    MISROUTING,
    PING_PONG,
    PING_PONG_PAIR,
    SILENT_CASES,
)
from tests.cast import ARBITER, CITIZEN, DISPATCHER, STREET, WATER
from tests.unit.test_metrics_exports import png_size
from tests.unit.test_metrics_units import Step, at, dispatched, play

ROADS = Actor("roads-1", units={"roads"})
WEEK = Period.week(date(2026, 1, 5))
G01, G02 = ({"location": {"area": a}} for a in ("D1.S1.C1.G01", "D1.S1.C1.G02"))
RETURN = {"reason_code": "wrong_function", "evidence": "not ours"}


def result(when: datetime, case: str, unit: Actor) -> list[Step]:
    return [
        (when, case, "submit_result", unit, {"result": "done"}),
        (when, case, "feedback", DISPATCHER, {}),
    ]


def confirmed(when: datetime, case: str, resolved: str) -> Step:
    return (when, case, "confirm", CITIZEN, {"resolved": resolved, "rating": "satisfied"})


def bounced(case: str) -> list[Step]:
    return [
        *dispatched(at(5, 9), case, "water", "01.01", **G02),
        (at(5, 10), case, "return", WATER, RETURN),
        (at(5, 11), case, "redispatch", DISPATCHER, {"unit": "roads", "reason": "roads'"}),
        (at(5, 12), case, "return", ROADS, RETURN),
        (at(8, 9), case, "arbitrate", ARBITER, {"unit": "water", "reason": "the pipe"}),
        (at(8, 10), case, "accept", WATER, {}),
    ]


STEPS: list[Step] = [
    *[s for c in ("H1", "H2", "H3") for s in dispatched(at(5, 9), c, "water", "01.01", **G01)],
    *dispatched(at(5, 9), "H4", "water", "01.01", **G02),
    *dispatched(at(5, 9), "R1", "roads", "03.01"),
    *dispatched(at(5, 9), "R2", "roads", "03.01"),
    *dispatched(at(5, 9), "S1", "street_s1", "02.01"),
    *bounced("P1"),
    *bounced("P2"),
    *[(at(5, 10), c, "accept", WATER, {}) for c in ("H1", "H2", "H3", "H4")],
    *[(at(5, 10), c, "accept", ROADS, {}) for c in ("R1", "R2")],
    (at(5, 10), "S1", "accept", STREET, {}),
    (at(5, 11), "H4", "request_extension", WATER, {"duration": "1 working day", "reason": "parts"}),
    (at(5, 11), "H4", "approve_extension", DISPATCHER, {}),
    *result(at(6, 10), "H4", WATER),
    confirmed(at(6, 11), "H4", "yes"),
    *result(at(7, 10), "R1", ROADS),
    confirmed(at(7, 11), "R1", "yes"),
    (at(9, 12), "R2", "request_extension", ROADS, {"duration": "1 working day", "reason": "tar"}),
    (at(9, 12), "R2", "approve_extension", DISPATCHER, {}),
    *[s for c in ("H1", "H3") for s in result(at(10, 0), c, WATER)],
    (at(10, 0), "H2", "submit_result", WATER, {"result": "done"}),
    (at(10, 1), "H2", "send_back", DISPATCHER, {"reason": "half done"}),
    *result(at(10, 2), "H2", WATER),
    confirmed(at(10, 3), "H1", "no"),
    confirmed(at(10, 3), "H2", "yes"),
    confirmed(at(10, 3), "H3", "yes"),
    (at(11, 9), "N1", "report", CITIZEN, {"description": "again", **G01}),
    (at(11, 9), "N1", "classify", DISPATCHER, {"category": "01.01"}),
]


def run(store: CaseStore) -> CaseStore:
    engine, clock = play(sorted(STEPS, key=lambda step: step[0]), store)
    clock.set(at(11, 23))
    engine.tick()
    return store


@pytest.fixture(scope="module")
def memory_report() -> SignalReport:
    return signals(run(InMemoryStore()), WEEK)


def _cells(report: SignalReport, signal: str, subject: str) -> tuple[object, ...]:
    row = report.of(signal, subject)
    assert row is not None, (signal, subject)
    return row.count, row.base, row.flagged, row.cases


def check(report: SignalReport) -> None:
    # Deadline hugging: water 3 of 5 results (60 % >= 50 %), roads 0 of 1.
    assert _cells(report, DEADLINE_HUGGING, "water") == (3, 5, True, ("H1", "H2", "H3"))
    assert _cells(report, DEADLINE_HUGGING, "roads") == (0, 1, False, ())
    hugging = report.of(DEADLINE_HUGGING, "water")
    assert hugging is not None
    assert "district 50%" in hugging.detail
    # Extension habit: water 1 per 5 results; roads 1 extension (R2) on 1 result (R1),
    # a ratio of 1 on a base below the minimum of 3: shown, not flagged.
    assert _cells(report, EXTENSION_HABIT, "water") == (1, 5, False, ("H4",))
    assert _cells(report, EXTENSION_HABIT, "roads") == (1, 1, False, ("R2",))
    # Late requests: R2's, 22 h before its due time; H4's was not late.
    assert _cells(report, LATE_EXTENSIONS, "roads") == (1, 1, False, ("R2",))
    assert _cells(report, LATE_EXTENSIONS, "water") == (0, 1, False, ())
    # Ping-pong: each of water and roads returned P1 and P2, both returned twice.
    assert _cells(report, PING_PONG, "water") == (2, 2, True, ("P1", "P2"))
    assert _cells(report, PING_PONG, "roads") == (2, 2, True, ("P1", "P2"))
    assert _cells(report, PING_PONG_PAIR, "roads <-> water") == (2, 2, True, ("P1", "P2"))
    # Hollow closures: H1 (not resolved), H2 (sent back), H3 (repeat report N1); H4 is
    # sound; roads' R1 is sound.
    assert _cells(report, HOLLOW_CLOSURES, "water") == (3, 4, True, ("H1", "H2", "H3"))
    assert _cells(report, HOLLOW_CLOSURES, "roads") == (0, 1, False, ())
    # Misrouting: disp-1 made 8 decisions in 01.01 (H1-H4, P1 and P2 twice each); the 4
    # of P1 and P2 were overturned (an approved return, then arbitration). 03.01: 0 of 2.
    misrouted = report.of(MISROUTING, "disp-1", "01.01")
    assert misrouted is not None
    assert (misrouted.count, misrouted.base, misrouted.flagged) == (4, 8, True)
    assert misrouted.cases == ("P1", "P2")
    routed = report.of(MISROUTING, "disp-1", "03.01")
    assert routed is not None
    assert (routed.count, routed.base, routed.flagged) == (0, 2, False)
    # Silent: S1, untouched since Monday 10:00 (Tue to Fri: 4 working days); R2 (Friday),
    # P1 and P2 (Thursday) and N1 (Sunday) had someone act within 3 working days.
    assert _cells(report, SILENT_CASES, "street_s1") == (1, 1, True, ("S1",))
    assert _cells(report, SILENT_CASES, "water") == (0, 2, False, ())
    assert _cells(report, SILENT_CASES, "roads") == (0, 1, False, ())
    assert _cells(report, SILENT_CASES, "(none)") == (0, 1, False, ())
    assert [(r.signal, r.subject) for r in report.flags] == [
        (DEADLINE_HUGGING, "water"),
        (PING_PONG, "roads"),
        (PING_PONG, "water"),
        (PING_PONG_PAIR, "roads <-> water"),
        (HOLLOW_CLOSURES, "water"),
        (MISROUTING, "disp-1"),
        (SILENT_CASES, "street_s1"),
    ]


def test_every_signal_counts_the_hand_checked_cases_on_the_memory_store(
    memory_report: SignalReport,
) -> None:
    check(memory_report)


def test_a_sqlite_file_gives_the_same_signals(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    try:
        report = signals(run(store), WEEK)
    finally:
        store.close()
    check(report)


def test_thresholds_come_from_the_configuration() -> None:
    store = run(InMemoryStore())
    lenient = SignalConfig(min_base=1, hugging_share=0.7, silent_working_days=5)
    report = signals(store, WEEK, config=lenient)
    # With a base of 1 enough, roads' extension habit and late request flag it; water's
    # 60 % no longer reaches 70 %; S1's 4 quiet working days are fewer than 5.
    assert report.flagged_subjects(EXTENSION_HABIT) == ("roads",)
    assert report.flagged_subjects(LATE_EXTENSIONS) == ("roads",)
    assert report.flagged_subjects(DEADLINE_HUGGING) == ()
    assert report.flagged_subjects(SILENT_CASES) == ()
    # A repeat window of a few hours leaves H3 sound: N1 came a day and a half later.
    short = signals(store, WEEK, config=SignalConfig(repeat_window=timedelta(hours=6)))
    assert _cells(short, HOLLOW_CLOSURES, "water") == (2, 4, True, ("H1", "H2"))


def test_events_outside_the_period_are_not_counted() -> None:
    store = run(InMemoryStore())
    before = Period.week(date(2025, 12, 29))
    report = signals(store, before, as_of=datetime(2026, 1, 5, tzinfo=UTC))
    assert report.rows == ()


def test_the_report_exports_its_rows_with_their_cases(memory_report: SignalReport) -> None:
    lines = to_csv(memory_report).splitlines()
    assert lines[0].split(",")[:4] == ["signal", "subject", "category", "count"]
    assert len(lines) == 1 + len(memory_report.rows)
    assert any(line.endswith(",P1 P2") for line in lines)
    assert '"hugging_share": 0.5' in to_json(memory_report)


def test_the_supervision_board_lists_the_flagged_units_in_one_line_each() -> None:
    store = run(InMemoryStore())
    board = supervision_board(store, as_of=WEEK.end, signals_over=WEEK)
    assert [row.subject for row in board.flagged_units] == [
        "water", "roads", "water", "roads <-> water", "water", "disp-1", "street_s1",
    ]  # fmt: skip
    lines = board.flag_lines()
    assert lines[0].startswith("water: deadline_hugging: 3 of 5 results in the last 10%")
    assert lines[5].startswith("disp-1 (01.01): misrouting: 4 of 8 dispatches")
    # Events given as a list of trails are read twice, with the same answer.
    with store.transaction(read_only=True) as tx:
        trails = [tx.get_events(case_id) for case_id in store.case_ids()]
    again = supervision_board(trails, as_of=WEEK.end, signals_over=WEEK)
    assert again.flag_lines() == lines
    assert supervision_board(store, as_of=WEEK.end).flagged_units == ()


def test_a_chart_per_signal_is_a_png_of_the_asked_size(
    memory_report: SignalReport, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib", reason="charts need the cli extra")
    from closedloop.metrics.charts import signal_chart
    from closedloop.metrics.signals import SIGNALS

    for signal in SIGNALS:
        drawn = signal_chart(
            memory_report, signal, tmp_path / f"{signal}.png", width=640, height=320
        )
        assert png_size(drawn) == (640, 320)
    with pytest.raises(ValueError, match="not a supervision signal"):
        signal_chart(memory_report, "laziness", tmp_path / "x.png")


def _placed(area: str, lat: float) -> dict[str, object]:
    return {"location": {"area": area, "lat": lat, "long": 120.0}}


PLACES: list[Step] = [
    # A1 and B1 (water) are closed on Tuesday at one spot of grid G01; on Wednesday A2
    # (01.01) is reported 55 m from A1, B2 (01.02) 1.1 km from B1. S2 (roads) waits on
    # the reporter's answer from Monday on: its clock is paused, it is not silent.
    *dispatched(at(5, 9), "A1", "water", "01.01", **_placed("D1.S1.C1.G01", 30.0)),
    *dispatched(at(5, 9), "B1", "water", "01.02", **_placed("D1.S1.C1.G01", 30.0)),
    *dispatched(at(5, 9), "S2", "roads", "03.01"),
    (at(5, 10), "A1", "accept", WATER, {}),
    (at(5, 10), "B1", "accept", WATER, {}),
    (at(5, 10), "S2", "accept", ROADS, {}),
    (at(5, 11), "S2", "request_info", ROADS, {"question": "Which side of the road?"}),
    *result(at(6, 10), "A1", WATER),
    *result(at(6, 10), "B1", WATER),
    confirmed(at(6, 11), "A1", "yes"),
    confirmed(at(6, 11), "B1", "yes"),
    *dispatched(at(7, 9), "A2", "water", "01.01", **_placed("D1.S1.C1.G01", 30.0005)),
    *dispatched(at(7, 9), "B2", "water", "01.02", **_placed("D1.S1.C1.G01", 30.01)),
]


def test_a_repeat_is_a_report_within_the_radius_and_a_paused_case_is_not_silent() -> None:
    store = InMemoryStore()
    play(PLACES, store)
    near = signals(store, WEEK)
    assert _cells(near, HOLLOW_CLOSURES, "water") == (1, 2, False, ("A1",))
    assert _cells(near, SILENT_CASES, "roads") == (0, 1, False, ())
    wide = signals(store, WEEK, config=SignalConfig(repeat_radius_m=2000))
    assert _cells(wide, HOLLOW_CLOSURES, "water") == (2, 2, False, ("A1", "B1"))
    off = signals(store, WEEK, config=SignalConfig(repeat_window=None))
    assert _cells(off, HOLLOW_CLOSURES, "water") == (0, 2, False, ())


def test_a_case_awaiting_confirmation_counts_among_the_open_cases_and_is_never_silent() -> None:
    # S3's result went to the reporter on Monday and waits for their confirmation all
    # week; S4 has had no act since Monday's sign-for. Both are roads' open cases.
    steps: list[Step] = [
        *dispatched(at(5, 9), "S3", "roads", "03.01"),
        *dispatched(at(5, 9), "S4", "roads", "03.01"),
        (at(5, 10), "S3", "accept", ROADS, {}),
        (at(5, 10), "S4", "accept", ROADS, {}),
        *result(at(5, 11), "S3", ROADS),
    ]
    store = InMemoryStore()
    play(steps, store)
    report = signals(store, WEEK)
    assert _cells(report, SILENT_CASES, "roads") == (1, 2, True, ("S4",))
    (line,) = [
        x
        for x in supervision_board(store, as_of=WEEK.end, signals_over=WEEK).flag_lines()
        if "silent_cases" in x
    ]
    assert line.startswith("roads: silent_cases: 1 of 2 open cases")
