"""``closedloop worker``: apply due timers and deliver the outbox until stopped.

The worker ticks the engine (warnings, breaches, escalations, expiry actions) and
delivers notifications, then sleeps until the next due timer or the interval, whichever
comes first. SIGTERM or SIGINT asks it to stop: it finishes the item in hand (a timer
being applied, a notification being sent, each under its lease), claims nothing more,
and exits. Claims go one notification at a time, so stopping never waits on more than
one send; a worker killed outright loses nothing either, since its leases run out and
another worker takes the items over.

Notifications are written as JSON lines on stdout, or POSTed as signed webhooks with
``--webhook`` (the secret from ``CLOSEDLOOP_WEBHOOK_SECRET``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from closedloop.adapters.callback import CallbackNotifier
from closedloop.cli.database import WorkflowOption, open_store, workflow_of, zone_of
from closedloop.cli.failures import fail, one_line, reported
from closedloop.engine.calendars import NaturalCalendar, chinese_office_hours
from closedloop.engine.ports import (
    CaseStore,
    CaseTransaction,
    DuePoint,
    Notification,
    Notifier,
    OutboxMessage,
    OutboxStatus,
)
from closedloop.engine.service import Engine
from closedloop.errors import StoreError

TIMER_BATCH = 10
"""Timers claimed at once (each is applied in a few milliseconds)."""


class StoppableStore:
    """A store that hands out claims until told to stop, then claims nothing.

    The engine's sweeps claim in a loop until nothing is due; once :attr:`stopping` is
    set they find nothing more, finish what they hold and return.

    Args:
        store: The store to pass everything else through to.
        stopping: Set when the worker is asked to stop.
    """

    def __init__(self, store: CaseStore, stopping: threading.Event) -> None:
        self._store = store
        self._stopping = stopping

    def transaction(self, *, read_only: bool = False) -> CaseTransaction:
        """See ``CaseStore.transaction``."""
        return self._store.transaction(read_only=read_only)

    def close(self) -> None:
        """See ``CaseStore.close``."""
        self._store.close()

    def case_ids(self) -> Sequence[str]:
        """See ``CaseStore.case_ids``."""
        return self._store.case_ids()

    def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> list[DuePoint]:
        """Claim due timers, unless the worker is stopping."""
        if self._stopping.is_set():
            return []
        return self._store.claim_due(now, owner=owner, lease=lease, limit=limit)

    def next_due_at(self) -> datetime | None:
        """See ``CaseStore.next_due_at``."""
        return self._store.next_due_at()

    def claim_outbox(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        """Claim notifications to send, unless the worker is stopping."""
        if self._stopping.is_set():
            return []
        return self._store.claim_outbox(now, owner=owner, lease=lease, limit=limit)

    def finish_outbox(
        self,
        message: OutboxMessage,
        *,
        status: OutboxStatus,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """See ``CaseStore.finish_outbox``."""
        return self._store.finish_outbox(
            message, status=status, error=error, next_attempt_at=next_attempt_at
        )

    def dead_letters(self, *, limit: int = 100) -> list[OutboxMessage]:
        """See ``CaseStore.dead_letters``."""
        return self._store.dead_letters(limit=limit)

    def requeue(self, message_id: str, *, now: datetime) -> None:
        """See ``CaseStore.requeue``."""
        self._store.requeue(message_id, now=now)


def print_json_line(notification: Notification) -> None:
    """Write the notification's id, case, event, recipient and subject as a JSON line."""
    line = {
        "id": notification.id,
        "case_id": notification.case_id,
        "event": notification.event,
        "recipient": notification.recipient,
        "subject": notification.subject,
    }
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class Worker:
    """Ticks and delivers in a loop until :attr:`stopping` is set.

    Args:
        engine: An engine over a :class:`StoppableStore` sharing ``stopping``.
        stopping: The stop request.
        interval: The longest sleep between two rounds, in seconds.
    """

    def __init__(self, engine: Engine, stopping: threading.Event, interval: float) -> None:
        self.engine = engine
        self.stopping = stopping
        self.interval = interval
        self.timers = 0
        self.delivered = 0

    def run(self) -> None:
        """Work until asked to stop; a store failure is reported and retried."""
        while not self.stopping.is_set():
            try:
                self.timers += self.engine.tick(batch=TIMER_BATCH).applied
                self.delivered += self.engine.deliver(batch=1).delivered
                pause = self._pause()
            except StoreError as error:
                say(f"store error, retrying in {self.interval:g} s: {one_line(error)}")
                pause = self.interval
            self.stopping.wait(pause)

    def _pause(self) -> float:
        due = self.engine.next_due_at()
        if due is None:
            return self.interval
        until = (due - datetime.now(UTC)).total_seconds()
        return min(max(until, 0.5), self.interval)  # a held lease is not worth spinning on


def say(message: str) -> None:
    """A line about the worker itself, on stderr."""
    print(f"closedloop worker: {message}", file=sys.stderr, flush=True)


def _notifier(webhook: str | None, secret: str | None, allow: list[str]) -> Notifier:
    if webhook is None:
        return CallbackNotifier(print_json_line)  # never contact data
    if not secret:
        fail("--webhook needs a signing secret: set CLOSEDLOOP_WEBHOOK_SECRET")
    from closedloop.adapters.webhook import WebhookNotifier

    return WebhookNotifier(webhook, secrets=secret, allow_hosts=allow, timeout=3.0)


@reported
def worker(
    url: Annotated[str, typer.Argument(help="Database URL or SQLite file path.")],
    interval: Annotated[float, typer.Option(min=0.05, help="Longest sleep, seconds.")] = 5.0,
    lease: Annotated[float, typer.Option(min=1, help="Lease on a claimed item, seconds.")] = 60,
    workflow: WorkflowOption = None,
    timezone: Annotated[
        str, typer.Option(help="Zone of the office-hours calendar the demo records on cases.")
    ] = "Asia/Shanghai",
    webhook: Annotated[
        str | None,
        typer.Option(help="POST notifications here, signed with CLOSEDLOOP_WEBHOOK_SECRET."),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(envvar="CLOSEDLOOP_WEBHOOK_SECRET", show_envvar=True, hidden=True),
    ] = None,
    allow_host: Annotated[
        list[str] | None, typer.Option(help="Private host the webhook may reach (repeatable).")
    ] = None,
) -> None:
    """Apply due timers and deliver notifications until stopped (SIGTERM or Ctrl-C)."""
    stopping = threading.Event()
    notifier = _notifier(webhook, webhook_secret, allow_host or [])
    zone = zone_of(timezone)
    store = open_store(url)
    try:
        engine = _engine(StoppableStore(store, stopping), workflow, zone, lease, notifier)
        running = Worker(engine, stopping, interval)
        _on_signals(stopping)
        say(f"running on {url} (stop with Ctrl-C or SIGTERM)")
        running.run()
    finally:
        store.close()
    say(f"stopped: {running.timers} timers applied, {running.delivered} notifications delivered")


def _engine(
    store: CaseStore, workflow: Path | None, zone: ZoneInfo, lease: float, notifier: Notifier
) -> Engine:
    """An engine on the store with the calendars cases may name: natural, office hours."""
    office = chinese_office_hours(zone.key)
    return Engine(
        workflow_of(workflow),
        store=store,
        calendar=NaturalCalendar(timezone=zone.key),
        calendars={office.name: office},
        notifier=notifier,
        worker_id=f"worker-{socket.gethostname()}-{os.getpid()}",
        lease=timedelta(seconds=lease),
    )


def _on_signals(stopping: threading.Event) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            say(f"{signal.Signals(signum).name}: finishing the item in hand, then stopping")
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
