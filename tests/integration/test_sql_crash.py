"""A process killed inside the commit path of a transition leaves the state change and its
outbox rows, or neither.

Worker processes run the Engine over a shared database, cycling cases through
``submit_result`` and ``send_back`` (which notifies the lead unit: an outbox row in the
same transaction). They are killed with SIGKILL at chosen points of a ``send_back``
(after the case's UPDATE but before the outbox INSERT, after both but before COMMIT,
just as COMMIT is sent) and at random moments while transitions stream.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.adapters.sqlalchemy.schema import outbox
from closedloop.adapters.sqlalchemy.transaction import SQLTransaction
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, WATER
from tests.conftest import new_schema, postgres_url

# Worker processes come from a fork server that imported closedloop once: each starts in
# a fraction of the time a fresh interpreter takes, and none inherits an open database.
SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["closedloop.adapters.sqlalchemy", "closedloop.engine.service"])
NOTIFYING = {t for rule in workflows.standard().notifications for t in rule.events}


def open_engine(url: str, schema: str | None) -> Engine:
    return Engine(workflows.standard(), store=SQLStore(url, schema=schema), clock=ManualClock())


def step(engine: Engine, case_id: str) -> str:
    """Move the case on: submit its result, or send it back (which notifies)."""
    case = engine.get(case_id, viewer=DISPATCHER)
    if case.state == "in_progress":
        engine.trigger(case_id, "submit_result", by=WATER, result="Valve replaced")
        return "submit_result"
    engine.trigger(case_id, "send_back", by=DISPATCHER, reason="Photo missing")
    return "send_back"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_inside(die_at: str, store: SQLStore) -> None:
    """Arm a SIGKILL at ``die_at`` in the next transaction that writes outbox rows."""
    original_add, original_commit = SQLTransaction.add_outbox, SQLTransaction.commit
    notified: list[bool] = []

    def add_outbox(self: SQLTransaction, messages: Any) -> None:
        if messages and die_at == "before the outbox rows":
            _die()  # the case's UPDATE and event INSERT are done, uncommitted
        original_add(self, messages)
        notified.append(bool(messages))

    def commit(self: SQLTransaction) -> None:
        if notified and notified[-1] and die_at == "before COMMIT":
            _die()
        original_commit(self)

    def on_commit(_connection: Any) -> None:
        # SQLAlchemy calls this just before it hands COMMIT to the driver.
        if notified and notified[-1] and die_at == "as COMMIT is sent":
            _die()

    SQLTransaction.add_outbox = add_outbox  # type: ignore[method-assign]
    SQLTransaction.commit = commit  # type: ignore[method-assign]
    event.listen(store.engine, "commit", on_commit)


def worker(
    url: str, schema: str | None, case_ids: list[str], die_at: str | None, streaming: Any
) -> None:
    """Step cases until killed: at ``die_at`` in the first ``send_back``, or from outside."""
    engine = open_engine(url, schema)
    if die_at is not None:
        _kill_inside(die_at, engine.store)  # type: ignore[arg-type]
    rng = random.Random(os.getpid())
    for n in range(100_000):
        step(engine, rng.choice(case_ids))
        if n == 1:  # two steps done, however slowly: the killer may strike from now on
            streaming.set()


def consistent(engine: Engine, case_ids: list[str]) -> int:
    """Assert: outbox rows exist exactly for the notifying events stored. Returns events."""
    with engine.store.engine.connect() as connection:  # type: ignore[attr-defined]
        rows = connection.execute(select(outbox.c.id)).scalars().all()
    written = {tuple(row.split("/")[:2]) for row in rows}  # "<case>/<seq>/<rule>/<to>"
    events = {case_id: engine.history(case_id) for case_id in case_ids}
    for case_id, history in events.items():
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        assert engine.get(case_id, viewer=DISPATCHER).version == len(history)
    expected = {
        (case_id, str(e.seq)) for case_id, h in events.items() for e in h if e.trigger in NOTIFYING
    }
    assert written == expected
    return sum(len(h) for h in events.values())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crash.db'}", None
    return postgres_url(), new_schema()


def _run_until_killed(database: tuple[str, str | None], ids: list[str], die_at: str | None) -> None:
    streaming = SPAWN.Event()
    process = SPAWN.Process(target=worker, args=(*database, ids, die_at, streaming))
    process.start()
    if die_at is None:
        assert streaming.wait(timeout=60)
        time.sleep(random.uniform(0.1, 0.4))
        os.kill(process.pid or 0, signal.SIGKILL)
    process.join(timeout=60)
    assert process.exitcode == -signal.SIGKILL


def test_a_killed_transition_leaves_its_change_and_outbox_rows_or_neither(
    database: tuple[str, str | None],
) -> None:
    engine = open_engine(*database)
    ids = []
    for _ in range(4):
        case = engine.report(CITIZEN, description="Water main leaking")
        engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
        engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
        ids.append(engine.trigger(case.id, "accept", by=WATER).id)
    count = consistent(engine, ids)
    for die_at in ("before the outbox rows", "before COMMIT", "as COMMIT is sent", None, None):
        _run_until_killed(database, ids, die_at)
        now = consistent(engine, ids)
        assert now >= count, die_at
        count = now
    # The workers did get work done before dying: the first submitted a result before
    # its first send_back, and each killed from outside had made two steps.
    assert count > 4 * 4 + 3
    engine.store.close()  # type: ignore[attr-defined]
