"""Outbox to receiver through the engine: retries with one id, and a killed worker's message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.adapters.webhook import WebhookNotifier, verify
from closedloop.engine.delivery import DeliveryReport, RetryPolicy
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER
from tests.http_server import ANSWERS_WITHIN
from tests.loopback import HANG, HTTPReceiver

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def dispatch_one(engine: Engine) -> None:
    case = engine.report(CITIZEN, description="井盖缺失 manhole cover missing")
    case = engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")


def test_500_500_timeout_200_is_four_attempts_with_one_id(tmp_path: Path) -> None:
    receiver = HTTPReceiver([500, 500, HANG, 200], hang_seconds=3)
    clock = ManualClock()
    hook = WebhookNotifier(
        receiver.url, secrets=[SECRET], timeout=1.0, allow_hosts=["127.0.0.1"], clock=clock
    )
    policy = RetryPolicy(first_delay=timedelta(seconds=10), jitter=0)
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    engine = Engine(workflows.standard(), store=store, clock=clock, notifier=hook, retry=policy)
    try:
        dispatch_one(engine)
        outcomes = []
        for _ in range(4):
            outcomes.append(engine.deliver())
            clock.advance(minutes=5)
        assert [o.delivered for o in outcomes] == [0, 0, 0, 1]
        assert [o.retried for o in outcomes] == [1, 1, 1, 0]
        ids = {r.headers["webhook-id"] for r in receiver.requests}
        stamps = [r.headers["webhook-timestamp"] for r in receiver.requests]
        assert len(receiver.requests) == 4
        assert len(ids) == 1
        for request in receiver.requests:
            sent = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
            verify(request.headers, request.body, [SECRET], now=sent + timedelta(seconds=1))
        assert len(set(stamps)) == 4, "each attempt carries its own timestamp"
    finally:
        hook.close()
        store.close()
        receiver.close()


def test_a_410_gives_up_on_one_message_which_is_listed_and_can_be_requeued(
    tmp_path: Path,
) -> None:
    receiver = HTTPReceiver([410])  # once, then 200
    clock = ManualClock()
    hook = WebhookNotifier(receiver.url, secrets=[SECRET], allow_hosts=["127.0.0.1"], clock=clock)
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    engine = Engine(workflows.standard(), store=store, clock=clock, notifier=hook)
    try:
        for _ in range(3):
            dispatch_one(engine)
        assert engine.deliver() == DeliveryReport(delivered=2, disabled=1)
        assert len(receiver.requests) == 3  # every message was tried
        (gone,) = engine.dead_letters()
        assert gone.status == "disabled"
        assert gone.id == receiver.requests[0].headers["webhook-id"]
        assert gone.last_error is not None
        assert "answered 410" in gone.last_error
        engine.requeue(gone.id)
        assert engine.deliver() == DeliveryReport(delivered=1)
        assert receiver.requests[-1].headers["webhook-id"] == gone.id
        assert engine.dead_letters() == []
    finally:
        hook.close()
        store.close()
        receiver.close()


WORKER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from closedloop import Engine, workflows
    from closedloop.adapters.sqlalchemy import SQLStore
    from closedloop.adapters.webhook import WebhookNotifier

    url, database, secret = sys.argv[1:4]
    hook = WebhookNotifier(url, secrets=[secret], timeout=60, allow_hosts=["127.0.0.1"])
    engine = Engine(workflows.standard(), store=SQLStore(database), notifier=hook,
                    lease=timedelta(minutes=10), worker_id="doomed")
    print("delivering", flush=True)
    engine.deliver()
    """
)


def test_a_worker_killed_while_sending_is_taken_over_with_the_same_id(tmp_path: Path) -> None:
    receiver = HTTPReceiver([HANG], hang_seconds=30)
    database = f"sqlite:///{tmp_path / 'cases.db'}"
    store = SQLStore(database)
    engine = Engine(workflows.standard(), store=store)
    dispatch_one(engine)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    doomed = subprocess.Popen(
        [sys.executable, "-c", WORKER, receiver.url, database, SECRET], env=env
    )
    try:
        # However slowly the worker starts, it either reaches the receiver (which then
        # holds the request) or ends; only a hung one takes ANSWERS_WITHIN.
        given_up = time.monotonic() + ANSWERS_WITHIN
        while not receiver.requests:
            assert doomed.poll() is None, "the first worker ended before reaching the receiver"
            assert time.monotonic() < given_up, "the first worker hung before the receiver"
            time.sleep(0.05)
        doomed.send_signal(signal.SIGKILL)  # killed mid-send, its claim still held
        doomed.wait(timeout=10)
        hook = WebhookNotifier(receiver.url, secrets=[SECRET], allow_hosts=["127.0.0.1"])
        rescuer = Engine(workflows.standard(), store=store, notifier=hook, worker_id="rescuer")
        killed_at = datetime.now(UTC)
        # The doomed worker's claim holds for ten minutes from before it was killed.
        assert rescuer.deliver(now=killed_at).delivered == 0
        assert len(receiver.requests) == 1
        assert rescuer.deliver(now=killed_at + timedelta(minutes=10, seconds=1)).delivered == 1
        first, second = receiver.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert rescuer.deliver(now=killed_at + timedelta(minutes=30)).delivered == 0
        assert len(receiver.requests) == 2
        hook.close()
    finally:
        if doomed.poll() is None:
            doomed.kill()
        store.close()
        receiver.close()
