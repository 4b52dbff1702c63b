"""``closedloop worker``: apply due timers and deliver the outbox until stopped.

The worker ticks the engine (warnings, breaches, escalations, expiry actions) and
delivers notifications, then sleeps until the next due timer or the interval, whichever
comes first (the loop is :class:`closedloop.Worker`). SIGTERM or SIGINT asks it to
stop: it finishes the item in hand (a timer being applied, a notification being sent,
each under its lease), claims nothing more, and exits. A second signal stops it at once,
even while it waits on a database server that does not answer (exit status 128 plus
the signal's number); the item in hand is then left to its lease. Claims go one notification at a
time, so stopping never waits on more than one send; a worker killed outright loses
nothing either, since its leases run out and another worker takes the items over.

Notifications are written as JSON lines on stdout, POSTed as signed webhooks with
``--webhook`` (the secret from ``CLOSEDLOOP_WEBHOOK_SECRET``), or sent through the
host's own channels named with ``--notifier [CHANNEL=]MODULE:ATTR`` (see
:mod:`closedloop.cli.hostcode`). Before it starts, the worker checks that the workflow
fits the stored cases (:mod:`closedloop.cli.fitting`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
from datetime import timedelta
from types import FrameType
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from closedloop.adapters.callback import CallbackNotifier
from closedloop.cli.database import (
    CalendarZoneOption,
    SchemaOption,
    WorkflowOption,
    calendars_engine,
    checkpoint_key_of,
    open_store,
    shown_url,
    workflow_of,
    zone_of,
)
from closedloop.cli.definitions import RegistryOption
from closedloop.cli.failures import fail, one_line, reported
from closedloop.cli.fitting import check_store
from closedloop.cli.hostcode import load_notifiers
from closedloop.engine.definition import Workflow
from closedloop.engine.ports import CaseStore, Notification, Notifier
from closedloop.engine.service import Engine
from closedloop.engine.worker import Worker
from closedloop.errors import StoreError

TIMER_BATCH = 10
"""Timers claimed at once (each is applied in a few milliseconds)."""


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


def say(message: str) -> None:
    """A line about the worker itself, on stderr."""
    print(f"closedloop worker: {message}", file=sys.stderr, flush=True)


def _notifiers(
    hosts: list[str],
    webhook: str | None,
    secret: str | None,
    allow: list[str],
    workflow: Workflow,
) -> dict[str, Notifier]:
    """Notifiers by channel: the host's ``--notifier`` ones, then stdout or the webhook
    for every other channel (``*``). A channel the workflow's notification rules never
    use is refused (a typo would otherwise send its messages to stdout)."""
    known = sorted({rule.channel for rule in workflow.notifications})
    for value in hosts:
        channel, equals, _ = value.partition("=")
        if equals and channel and channel != "*" and channel not in known:
            fail(
                f"--notifier {value}: workflow {workflow.name!r} has no channel {channel!r}; "
                f"its channels: {', '.join(known) or 'none'}"
            )
    channels = dict(load_notifiers(hosts))
    if "*" in channels:
        if webhook is not None:
            fail("--webhook and a --notifier without a channel both serve every channel")
        return channels
    return {"*": _default_notifier(webhook, secret, allow), **channels}


def _default_notifier(webhook: str | None, secret: str | None, allow: list[str]) -> Notifier:
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
    timezone: CalendarZoneOption = None,
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
    notifier: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[CHANNEL=]MODULE:ATTR",
            help="The host's channel: a notifier, or a function returning one, for CHANNEL "
            "(every channel without it); repeatable.",
            show_default=False,
        ),
    ] = None,
    registry: RegistryOption = None,
    checkpoint_every: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="Sign a checkpoint of the changed cases' audit heads every this many "
            "seconds, with the key in CLOSEDLOOP_CHECKPOINT_KEY (hex).",
            show_default=False,
        ),
    ] = None,
    checkpoint_key: Annotated[
        str | None,
        typer.Option(envvar="CLOSEDLOOP_CHECKPOINT_KEY", show_envvar=True, hidden=True),
    ] = None,
    purge_every: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Purge the personal data the workflow's retention rules make due every "
            "this many hours (the workflow given with --workflow must have such rules).",
            show_default=False,
        ),
    ] = None,
    schema: SchemaOption = None,
) -> None:
    """Apply due timers and deliver notifications until stopped (SIGTERM or Ctrl-C)."""
    key = _checkpoint_key(checkpoint_every, checkpoint_key)
    loaded = workflow_of(workflow, registry)
    channels = _notifiers(notifier or [], webhook, webhook_secret, allow_host or [], loaded)
    zone = zone_of(timezone) if timezone is not None else None
    if purge_every is not None and not loaded.retention:
        fail(
            f"--purge-every needs retention rules, and workflow {loaded.name!r} has none: "
            "give the one with them (--workflow FILE)"
        )
    store = open_store(url, schema)
    try:
        check_store(store, loaded)
        engine = _engine(store, loaded, zone, lease, channels, key)
        running = _worker(engine, interval, checkpoint_every, purge_every)
        _on_signals(running)
        say(f"running on {shown_url(url)} (stop with Ctrl-C or SIGTERM)")
        running.run()
    finally:
        store.close()
    for line in stuck_lines(engine):
        say(line)
    failures = failure_line(running, url)
    if failures:
        say(failures)
    signed = f", {running.checkpoints} checkpoints signed" if checkpoint_every else ""
    n = running.purged
    purged = f", {n} {'case' if n == 1 else 'cases'} purged" if purge_every else ""
    say(
        f"stopped: {running.applied} timers applied, "
        f"{running.delivered} notifications delivered{signed}{purged}"
    )


def _checkpoint_key(every: float | None, text: str | None) -> bytes | None:
    """The checkpoint key from its hex text, when checkpoints are asked for."""
    if every is None:
        return None
    if not text:
        fail("--checkpoint-every needs a signing key: set CLOSEDLOOP_CHECKPOINT_KEY (hex)")
    return checkpoint_key_of(text)


def _engine(
    store: CaseStore,
    workflow: Workflow,
    zone: ZoneInfo | None,
    lease: float,
    notifier: dict[str, Notifier],
    checkpoint_key: bytes | None = None,
) -> Engine:
    """An engine on the store with the calendars cases may name: natural, office hours."""
    return calendars_engine(
        store,
        workflow,
        zone,
        notifier=notifier,
        worker_id=f"worker-{socket.gethostname()}-{os.getpid()}",
        lease=timedelta(seconds=lease),
        checkpoint_key=checkpoint_key,
    )


def stuck_lines(engine: Engine) -> list[str]:
    """One line per timer the engine could not apply, with its reason and attempts."""
    return [
        f"timer stuck: case {s.point.case_id} {s.point.kind}"
        f"{f' {s.point.level}' if s.point.level else ''} ({s.reason.value}, "
        f"{s.attempts} {'attempt' if s.attempts == 1 else 'attempts'}): {one_line_text(s.detail)}"
        for s in engine.stuck_timers()
    ]


def failure_line(running: Worker, url: str) -> str | None:
    """How many delivery attempts failed, when any did: retried, dead, disabled, with
    how to list them."""
    counts = [
        (running.retried, "failed attempts to retry", "failed attempt to retry"),
        (running.dead, "dead letters", "dead letter"),
        (running.disabled, "disabled (their endpoint is gone)", "disabled (its endpoint is gone)"),
    ]
    parts = [f"{n} {many if n != 1 else one}" for n, many, one in counts if n]
    if not parts:
        return None
    listing = f"list them: closedloop outbox dead {shown_url(url)}"
    return f"notifications not delivered: {', '.join(parts)} ({listing})"


def one_line_text(text: str) -> str:
    return " ".join(text.split())


def _worker(
    engine: Engine,
    interval: float,
    checkpoint_every: float | None = None,
    purge_every: float | None = None,
) -> Worker:
    """The library's loop, claiming one notification at a time (stopping waits on one
    send at most); a store error is reported on stderr and retried after the interval."""

    def retrying(error: StoreError) -> None:
        say(f"store error, retrying in {interval:g} s: {one_line(error)}")

    return Worker(
        engine,
        interval=timedelta(seconds=interval),
        tick_batch=TIMER_BATCH,
        deliver_batch=1,
        on_error=retrying,
        checkpoint_every=None if checkpoint_every is None else timedelta(seconds=checkpoint_every),
        purge_every=None if purge_every is None else timedelta(hours=purge_every),
    )


def _on_signals(running: Worker) -> None:
    """Stop ``running`` at the first SIGTERM or SIGINT, and the process at once at the
    second.

    A handler runs in the main thread between two steps of whatever it was doing, so it
    takes no lock the worker may hold: the worker's own wait on its stopping event
    holds that event's lock for a moment as it wakes, and a handler that set the event
    there would wait on itself for ever. A thread sets it once the handler has returned;
    the signals are counted in a list, and the lines go to stderr's descriptor directly.
    """
    asked: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        asked.append(signum)
        name = signal.Signals(signum).name
        if len(asked) > 1:
            # Asked again: the item in hand may be waiting on a database that does not
            # answer, and so would any cleanup. Nothing is committed half-way (the
            # database drops the open transaction with the connection); its lease runs
            # out. The process ends here, as a SIGKILL would end it.
            _tell(f"{name} again: stopping at once; the item in hand is left to its lease")
            os._exit(128 + signum)
        _tell(f"{name}: finishing the item in hand, then stopping (send it again to stop at once)")
        threading.Thread(target=running.stop, name="closedloop-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _tell(message: str) -> None:
    """:func:`say`, from a signal handler: written to stderr's descriptor, past the
    buffered stream (whose lock the interrupted code may hold), after what the stream
    holds already."""
    with contextlib.suppress(OSError, RuntimeError, ValueError):
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"closedloop worker: {message}\n".encode())
