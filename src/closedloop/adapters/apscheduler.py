"""``Ticker``: wakes an Engine with APScheduler 3 to apply due timers.

Deadlines are rows in the store, never in-process timers; the scheduler only decides
when to sweep. Each sweep is one round of :class:`closedloop.Worker` (without outbox
delivery, unless ``also`` asks for it), and the worker's pause decides the next
wake-up: the ticker sweeps on a fixed interval and also wakes at the next due instant
it knows of, measured on the engine's clock. Late runs are not dropped (no misfire
grace limit, coalesced into one run) and an error in one sweep is logged while the
next still runs. Several processes may each run a ticker over one store: the store's
leases decide who applies each timer, so effects are not duplicated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from closedloop.engine.service import Engine
from closedloop.engine.worker import Worker

log = logging.getLogger("closedloop.ticker")

_SWEEP = "closedloop-sweep"
_WAKE = "closedloop-wake"


class Ticker:
    """Calls ``engine.tick()`` (and any ``also`` callables) on an interval and at the next due time.

    Args:
        engine: The engine to wake.
        interval: Seconds between regular sweeps.
        scheduler: An APScheduler 3 scheduler to add jobs to; a ``BackgroundScheduler``
            in UTC by default, started and stopped by this ticker.
        also: Further work to run after each tick (for example outbox delivery).

    Raises:
        ValidationError: ``interval`` is not positive.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = 30.0,
        scheduler: BaseScheduler | None = None,
        also: tuple[Callable[[], Any], ...] = (),
    ) -> None:
        self._worker = Worker(
            engine, interval=timedelta(seconds=interval), tick_batch=100, deliver=False
        )
        self._interval = interval
        self._owns_scheduler = scheduler is None
        self._scheduler = scheduler or BackgroundScheduler(timezone=UTC)
        self._also = also
        self._lock = threading.Lock()
        self.runs = 0
        """How many sweeps have completed, with or without error."""

    def start(self) -> None:
        """Add the sweep job (and start the scheduler if this ticker made it)."""
        self._scheduler.add_job(
            self.sweep,
            "interval",
            seconds=self._interval,
            id=_SWEEP,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        if self._owns_scheduler:
            self._scheduler.start()

    def shutdown(self, *, wait: bool = True) -> None:
        """Remove this ticker's jobs; stop the scheduler if this ticker made it."""
        for job_id in (_SWEEP, _WAKE):
            if self._scheduler.get_job(job_id) is not None:
                self._scheduler.remove_job(job_id)
        if self._owns_scheduler and self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    def sweep(self) -> None:
        """One sweep: tick, run the extra work, then plan the next wake-up.

        Errors are logged, not raised: the scheduler must keep sweeping, and the timers
        that failed stay in the store to be applied by a later sweep.
        """
        with self._lock:
            try:
                self._worker.run_once()
                for work in self._also:
                    work()
            except Exception:
                log.exception("closedloop sweep failed; the next sweep will retry")
            finally:
                self.runs += 1
            self._plan_wake()

    def _plan_wake(self) -> None:
        try:
            pause = self._worker.pause()
        except Exception:
            log.exception("closedloop could not read the next due time")
            return
        if pause >= self._worker.interval:
            return  # the regular sweep comes first
        self._scheduler.add_job(
            self.sweep,
            "date",
            run_date=datetime.now(UTC) + pause,
            id=_WAKE,
            replace_existing=True,
            misfire_grace_time=None,
        )
