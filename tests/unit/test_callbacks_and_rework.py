"""Callbacks carry the reporter's two answers both ways; rework counts as published.

The week is Monday 2026-01-05 to Monday 2026-01-12 (UTC), the standard workflow on
the natural calendar (handling 5 days), on every store. Each expected figure is
derived in the comments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from closedloop.metrics import MetricsConfig, ThreeRates, compute, supervision_board
from tests.cast import CITIZEN, DISPATCHER, VERIFIER, WATER
from tests.unit.test_metrics_units import WEEK, Step, at, dispatched, play

if TYPE_CHECKING:
    from tests.conftest import Backend


def handled(when_: int, case: str) -> list[Step]:
    """Result submitted and fed back on 2026-01-``when_`` at 09:00."""
    return [
        (at(when_, 9), case, "submit_result", WATER, {"result": "done"}),
        (at(when_, 9), case, "feedback", DISPATCHER, {}),
    ]


def answers(resolved: str, rating: str) -> dict[str, str]:
    return {"resolved": resolved, "rating": rating}


CALLBACK_WEEK: list[Step] = [
    *dispatched(at(5, 9), "K1", "water", "01.01"),
    *dispatched(at(5, 9), "K2", "water", "01.01"),
    *dispatched(at(5, 9), "K3", "water", "01.01"),
    *((at(5, 10), k, "accept", WATER, {}) for k in ("K1", "K2", "K3")),
    *handled(6, "K1"),
    *handled(6, "K2"),
    *handled(6, "K3"),
    # K1: resolved, basically satisfied.
    (at(6, 12), "K1", "confirm", CITIZEN, answers("yes", "basically_satisfied")),
    # K3: not resolved, yet satisfied with the service.
    (at(6, 12), "K3", "confirm", CITIZEN, answers("no", "satisfied")),
    # K2: sent back (not resolved, dissatisfied), then resolved and satisfied.
    (
        at(6, 12),
        "K2",
        "reject_result",
        CITIZEN,
        {"reason": "leaks", **answers("no", "dissatisfied")},
    ),
    *handled(7, "K2"),
    (at(7, 12), "K2", "confirm", CITIZEN, answers("yes", "satisfied")),
]


def test_both_callbacks_record_the_answers_and_enter_the_rates(backend: Backend) -> None:
    store = backend.fresh()
    engine, _ = play(CALLBACK_WEEK, store)
    sent_back = next(e for e in engine.history("K2") if e.trigger == "reject_result")
    assert (sent_back.payload["resolved"], sent_back.payload["rating"]) == ("no", "dissatisfied")
    assert engine.get("K3", viewer=DISPATCHER).attributes["resolved"] == "no"

    total = compute(store, WEEK).total
    # Four callbacks: K1 (yes, basically), K2 back (no, dissatisfied), K2 (yes,
    # satisfied), K3 (no, satisfied). Resolved 1 + 0 + 1 + 0 = 2 of 4; satisfied
    # 1 + 0 + 1 + 1 = 3 of 4 with 基本满意 counting in full.
    assert (total.closures, total.resolution_base, total.rated) == (3, 4, 4)
    assert (total.resolved, total.resolution_rate) == (2, 0.5)
    assert (total.satisfied, total.satisfaction_rate) == (3, 0.75)
    # 基本满意 weighted 0.5: 0.5 + 0 + 1 + 1 = 2.5 of 4.
    half = MetricsConfig(
        three_rates=ThreeRates(satisfaction_weights={"satisfied": 1, "basically_satisfied": 0.5})
    )
    weighted = compute(store, WEEK, config=half).total
    assert weighted.satisfaction_rate == 2.5 / 4
    assert weighted.resolution_rate == 0.5


def test_a_callback_without_answers_counts_by_the_configured_rule(backend: Backend) -> None:
    store = backend.fresh()
    steps: list[Step] = [
        *dispatched(at(5, 9), "K1", "water", "01.01"),
        (at(5, 10), "K1", "accept", WATER, {}),
        *handled(6, "K1"),
        (at(6, 12), "K1", "reject_result", CITIZEN, {"reason": "no answer to the questions"}),
        *handled(7, "K1"),
        (at(7, 12), "K1", "confirm", CITIZEN, answers("yes", "satisfied")),
    ]
    play(steps, store)
    total = compute(store, WEEK).total
    # Defaults: the silent send-back counts as not resolved (1 of 2) and is left out of
    # satisfaction (1 of 1).
    assert (total.resolution_base, total.resolution_rate) == (2, 0.5)
    assert (total.rated, total.satisfaction_rate) == (1, 1.0)


REWORK_WEEK: list[Step] = [
    *dispatched(at(5, 9), "R", "water", "01.01"),
    *dispatched(at(5, 9), "P", "water", "01.01"),
    (at(5, 9), "R", "accept", WATER, {}),
    (at(5, 9), "P", "accept", WATER, {}),
    # R fails three checks: the reviewer's send-back, the reporter's, the verifier's.
    (at(5, 12), "R", "submit_result", WATER, {"result": "patched"}),
    (at(5, 13), "R", "send_back", DISPATCHER, {"reason": "no photo"}),
    (at(6, 9), "R", "submit_result", WATER, {"result": "patched"}),
    (at(6, 9), "R", "feedback", DISPATCHER, {}),
    (at(6, 10), "R", "reject_result", CITIZEN, {"reason": "still leaks"}),
    (at(6, 11), "R", "submit_result", WATER, {"result": "patched again"}),
    (at(6, 11), "R", "feedback", DISPATCHER, {}),
    (at(6, 12), "R", "reject_result", VERIFIER, {"reason": "checked on site: leaks"}),
    # P closes at the first try.
    (at(6, 13), "P", "submit_result", WATER, {"result": "done"}),
    (at(6, 13), "P", "feedback", DISPATCHER, {}),
    (at(6, 14), "P", "confirm", CITIZEN, answers("yes", "satisfied")),
]


def test_send_backs_are_reworks_and_the_third_failed_check_supervises(backend: Backend) -> None:
    store = backend.fresh()
    engine, _ = play(REWORK_WEEK[:-6], store)  # up to R's second failed check
    second = engine.get("R", viewer=DISPATCHER)
    assert (second.counters["failed_checks"], second.supervised) == (2, False)
    engine, _ = play(REWORK_WEEK, backend.fresh())
    r = engine.get("R", viewer=DISPATCHER)
    assert (r.counters["failed_checks"], r.counters["reworks"], r.counters["sent_back"]) == (
        3,
        2,
        1,
    )
    assert r.supervised is True
    supervising = next(e for e in engine.history("R") if e.changes.get("supervised"))
    assert (supervising.trigger, supervising.actor) == ("reject_result", VERIFIER.id)


def test_the_rework_rate_counts_over_the_cases_due_to_close(backend: Backend) -> None:
    store = backend.fresh()
    play(REWORK_WEEK, store)
    total = compute(store, WEEK).total
    # Due this week: P (accepted Mon 09:00, due Sat 09:00) and R (its last round began
    # at the verifier's send-back Tue 12:00, due Sun 12:00). R reworked: 1 of 2 due,
    # though only P closed (the old closures base would say 0 of 1).
    assert (total.due, total.closures, total.reworked, total.reworks) == (2, 1, 1, 3)
    assert total.rework_rate == 0.5
    board = supervision_board(store, as_of=WEEK.end)
    assert (board.total.open, board.total.supervised) == (1, 1)
