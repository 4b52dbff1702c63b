"""The worker loop: tick, deliver, sleep until the next due time, until asked to stop.

A host that runs an engine in a process of its own (``closedloop worker`` does) needs
the same loop every time: apply the timers that came due, deliver the outbox, then
sleep until the engine's next due time or an interval, whichever comes first, and do
it again. :class:`Worker` is that loop. Time is read from the engine's clock, so a
test with a ``ManualClock`` and a ``wait`` that moves the clock sees exact pauses.

Stopping is cooperative: :meth:`Worker.stop` (or setting the event passed as
``stopping``) is seen before every claim, so the worker finishes the item in hand -
the timers it has claimed, the notification it is sending - claims nothing more, and
:meth:`Worker.run` returns. Nothing is lost when a worker is killed outright either:
its leases run out and another worker takes the items over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from closedloop.engine.delivery import DeliveryReport
from closedloop.engine.ports import Checkpoint
from closedloop.engine.retention import PurgeReport
from closedloop.engine.service import Engine
from closedloop.engine.ticking import TickReport
from closedloop.errors import StoreError, ValidationError

log = logging.getLogger("closedloop.worker")

MIN_PAUSE = timedelta(milliseconds=500)
"""The shortest sleep when a timer is already due: one still held under another
worker's lease would otherwise have the loop spin until the lease runs out."""


@dataclass(frozen=True, slots=True)
class WorkerRound:
    """What one round of a :class:`Worker` did.

    Attributes:
        timers: What the tick did (timers applied, stale, deferred).
        deliveries: What delivery did (delivered, retried, dead, disabled).
        checkpoint: The checkpoint the round made, if it made one.
        purge: What the round's purge of personal data did, if it purged.
    """

    timers: TickReport
    deliveries: DeliveryReport
    checkpoint: Checkpoint | None = None
    purge: PurgeReport | None = None


def _log_store_error(error: StoreError) -> None:
    log.error("closedloop worker round failed; retrying after the interval", exc_info=error)


class Worker:
    """Ticks an engine and delivers its outbox in a loop, until asked to stop.

    Each round applies the due timers (``engine.tick``) and delivers the outbox
    (``engine.deliver``), then the worker sleeps until the engine's next due time or
    ``interval``, whichever comes first (:data:`MIN_PAUSE` when a timer is already due
    but held by another worker). A :class:`~closedloop.errors.StoreError` in a
    round is handed to ``on_error`` and the round is tried again after ``interval``;
    any other error ends :meth:`run`.

    Args:
        engine: The engine to work for; its clock measures the pauses.
        interval: The longest sleep between two rounds.
        tick_batch: Timers claimed at once (each is applied in its own transaction).
        deliver_batch: Notifications claimed at once; one by default, so stopping
            never waits on more than one send.
        deliver: Deliver the outbox in each round; turn it off when something else
            delivers.
        stopping: The stop request; a new event by default. Pass one to stop the
            worker from elsewhere (a signal handler, another thread).
        wait: Sleeps for the pause it is given and returns early once the worker is
            asked to stop; ``stopping.wait`` by default. A test with a ``ManualClock``
            passes one that advances the clock.
        on_error: Told of a store error in a round; logged on the
            ``closedloop.worker`` logger by default.
        checkpoint_every: Sign a checkpoint of the changed cases' audit heads
            (``engine.checkpoint``) in the first round and then once this much time
            has passed on the engine's clock; never by default. The engine needs a
            ``checkpoint_key``.
        purge_every: Purge the personal data the workflow's retention rules make due
            (``engine.purge``) in the first round and then once this much time has
            passed; never by default.

    Raises:
        ValidationError: ``interval``, a batch size or ``checkpoint_every`` is not
            positive, or ``checkpoint_every`` is given to an engine without a key.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        interval: timedelta = timedelta(seconds=5),
        tick_batch: int = 10,
        deliver_batch: int = 1,
        deliver: bool = True,
        stopping: threading.Event | None = None,
        wait: Callable[[timedelta], object] | None = None,
        on_error: Callable[[StoreError], object] = _log_store_error,
        checkpoint_every: timedelta | None = None,
        purge_every: timedelta | None = None,
    ) -> None:
        _check(interval, tick_batch, deliver_batch)
        if purge_every is not None and purge_every <= timedelta(0):
            raise ValidationError([("purge_every", "must be positive")], subject="worker")
        self._purge_every = purge_every
        self._purged_at: datetime | None = None
        _check_checkpoints(engine, checkpoint_every)
        self._checkpoint_every = checkpoint_every
        self._checkpointed_at: datetime | None = None
        self._engine = engine
        self._interval = interval
        self._tick_batch = tick_batch
        self._deliver_batch = deliver_batch
        self._deliver = deliver
        self._stopping = stopping if stopping is not None else threading.Event()
        self._wait = wait or self._sleep
        self._on_error = on_error
        self.applied = 0
        """Timers applied since the worker was made."""
        self.delivered = 0
        """Notifications delivered since the worker was made."""
        self.retried = 0
        """Failed attempts left for a later retry since the worker was made."""
        self.dead = 0
        """Notifications that became dead letters (the attempt limit) since the worker
        was made."""
        self.disabled = 0
        """Notifications whose endpoint said it is gone (kept as ``disabled``) since the
        worker was made."""
        self.checkpoints = 0
        """Checkpoints made since the worker was made."""
        self.purged = 0
        """Cases whose personal data a purge erased since the worker was made (a case
        counts once per round, however many of its rules came due together)."""

    @property
    def interval(self) -> timedelta:
        """The longest sleep between two rounds."""
        return self._interval

    @property
    def stopping(self) -> threading.Event:
        """The stop request: set by :meth:`stop`, seen before every claim."""
        return self._stopping

    def stop(self) -> None:
        """Ask the worker to stop: it finishes the item in hand and claims nothing more.

        A stopped worker stays stopped: :meth:`run` returns at once.
        """
        self._stopping.set()

    def run(self) -> None:
        """Work round after round until asked to stop.

        Raises:
            Exception: any error but a ``StoreError`` ends the run (the engine already
                defers a timer whose effect is refused, and retries a failed send).
        """
        while not self._stopping.is_set():
            try:
                self.run_once()
                pause = self.pause()
            except StoreError as error:
                self._on_error(error)
                pause = self._interval
            if not self._stopping.is_set():
                self._wait(pause)

    def run_once(self) -> WorkerRound:
        """One round: apply the due timers, then deliver the outbox; no sleeping.

        Raises:
            StoreError: the store failed; nothing half-done is kept.
        """
        should_stop = self._stopping.is_set
        timers = self._engine.tick(batch=self._tick_batch, should_stop=should_stop)
        self.applied += timers.applied
        deliveries = DeliveryReport()
        if self._deliver:
            deliveries = self._engine.deliver(batch=self._deliver_batch, should_stop=should_stop)
            self.delivered += deliveries.delivered
            self.retried += deliveries.retried
            self.dead += deliveries.dead
            self.disabled += deliveries.disabled
        return WorkerRound(timers, deliveries, self._checkpoint(), self._purge())

    def _purge(self) -> PurgeReport | None:
        if self._purge_every is None or self._stopping.is_set():
            return None
        now = self._engine.now()
        last = self._purged_at
        if last is not None and now - last < self._purge_every:
            return None
        self._purged_at = now
        report = self._engine.purge(now=now)
        self.purged += len({p.case_id for p in report.purged})
        return report

    def _checkpoint(self) -> Checkpoint | None:
        if self._checkpoint_every is None or self._stopping.is_set():
            return None
        now = self._engine.now()
        last = self._checkpointed_at
        if last is not None and now - last < self._checkpoint_every:
            return None
        made = self._engine.checkpoint()
        self._checkpointed_at = now
        if made is not None:
            self.checkpoints += 1
        return made

    def pause(self) -> timedelta:
        """How long to sleep before the next round, on the engine's clock.

        Until the next due time, but no longer than :attr:`interval`; :data:`MIN_PAUSE`
        when a timer is already due (another worker holds it).

        Raises:
            StoreError: the store failed.
        """
        longest = self._interval
        if self._checkpoint_every is not None and self._checkpointed_at is not None:
            next_checkpoint = self._checkpointed_at + self._checkpoint_every - self._engine.now()
            longest = min(longest, max(next_checkpoint, MIN_PAUSE))
        if self._purge_every is not None and self._purged_at is not None:
            next_purge = self._purged_at + self._purge_every - self._engine.now()
            longest = min(longest, max(next_purge, MIN_PAUSE))
        due = self._engine.next_due_at()
        if due is None:
            return longest
        until = due - self._engine.now()
        return min(until if until > timedelta(0) else MIN_PAUSE, longest)

    def _sleep(self, pause: timedelta) -> None:
        self._stopping.wait(pause.total_seconds())


def _check(interval: timedelta, tick_batch: int, deliver_batch: int) -> None:
    problems: list[tuple[str, str]] = []
    if not isinstance(interval, timedelta) or interval <= timedelta(0):
        problems.append(("interval", f"must be a positive timedelta, got {interval!r}"))
    for name, size in (("tick_batch", tick_batch), ("deliver_batch", deliver_batch)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            problems.append((name, f"must be a whole number of at least 1, got {size!r}"))
    if problems:
        raise ValidationError(problems, subject="worker")


def _check_checkpoints(engine: Engine, every: timedelta | None) -> None:
    if every is None:
        return
    if not isinstance(every, timedelta) or every <= timedelta(0):
        problem = f"must be a positive timedelta or None, got {every!r}"
    elif not engine.signs_checkpoints:
        problem = "needs an engine with a checkpoint_key: Engine(checkpoint_key=...)"
    else:
        return
    raise ValidationError([("checkpoint_every", problem)], subject="worker")
