"""Raced idempotent retries on the real databases: every sender gets the first result.

Four processes send the same keyed command to the same case at once, each retrying on
``ConcurrentModification`` as a client would. Whatever the interleaving, and whatever
the database's isolation level, each of them must be answered with the case as the
first command left it; a refusal such as "the case is paused" for a command that
succeeded would be a wrong answer.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from closedloop import ConcurrentModification, Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, WATER
from tests.conftest import new_schema, postgres_url

SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["closedloop.adapters.sqlalchemy", "closedloop.engine.service"])

SENDERS = 4
ROUNDS = 60


def open_engine(url: str, schema: str | None) -> Engine:
    return Engine(workflows.standard(), store=SQLStore(url, schema=schema), clock=ManualClock())


def case_in_progress(engine: Engine) -> str:
    case = engine.report(CITIZEN, description="Water main leaking", location={"area": "310101"})
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    return engine.trigger(case.id, "accept", by=WATER).id


def sender(url: str, schema: str | None, case_ids: list[str], start: Any) -> Counter[str]:
    """Send ``request_info`` once per case with the case's key; retry on conflicts."""
    engine = open_engine(url, schema)
    outcomes: Counter[str] = Counter()
    for case_id in case_ids:
        start.wait()
        for _ in range(50):
            try:
                case = engine.trigger(
                    case_id,
                    "request_info",
                    by=WATER,
                    idempotency_key=f"ask-{case_id}",
                    question="Which floor?",
                )
            except ConcurrentModification:
                continue
            except Exception as exc:  # a refusal of a command that succeeded
                outcomes[f"wrong: {type(exc).__name__}: {exc}"] += 1
                break
            right = case.version == 5 and case.paused == "info"
            outcomes["first result" if right else f"wrong: version {case.version}"] += 1
            break
        else:
            outcomes["gave up"] += 1
    engine.store.close()  # type: ignore[attr-defined]
    return outcomes


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'retries.db'}", None
    return postgres_url(), new_schema()


def test_a_raced_keyed_retry_always_returns_the_first_result(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    engine = open_engine(url, schema)
    case_ids = [case_in_progress(engine) for _ in range(ROUNDS)]
    with SPAWN.Manager() as manager:
        start = manager.Barrier(SENDERS)
        with SPAWN.Pool(SENDERS) as pool:
            results = pool.starmap(sender, [(url, schema, case_ids, start)] * SENDERS)
    outcomes = sum(results, Counter())
    assert outcomes == Counter({"first result": SENDERS * ROUNDS})
    for case_id in case_ids:
        assert [e.trigger for e in engine.history(case_id)][-1] == "request_info"
        assert len(engine.history(case_id)) == 5
    engine.store.close()  # type: ignore[attr-defined]
