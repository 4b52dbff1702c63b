"""A notifier for tests that keeps what it was given and fails when told to.

Kept apart from :mod:`closedloop.testing.notifiers` so that examples and scripts can
use :class:`RecordingNotifier` without pytest installed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from closedloop.engine.ports import Notification
from closedloop.errors import DeliveryFailed, ValidationError

__all__ = ["FailureScript", "RecordingNotifier"]

FailureScript = Exception | Callable[[Notification], Exception]
"""An exception to raise, or a function making one for the notification being sent."""


class RecordingNotifier:
    """Records every notification it delivers; thread-safe.

    ``sent`` holds the notifications delivered, in order; ``attempts`` every call,
    failed ones included. :meth:`fail_next` scripts failures: the next ``n`` calls
    raise instead of delivering. Safe to share between the threads of several workers.

    Example::

        notifier = RecordingNotifier()
        notifier.fail_next(2)                 # two DeliveryFailed, then success
        engine = Engine(..., notifier=notifier)
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sent: list[Notification] = []
        self._attempts: list[Notification] = []
        self._failures: deque[FailureScript | None] = deque()

    @property
    def sent(self) -> list[Notification]:
        """The notifications delivered, oldest first (a copy)."""
        with self._changed:
            return list(self._sent)

    @property
    def attempts(self) -> list[Notification]:
        """Every notification passed to :meth:`send`, including failed attempts (a copy)."""
        with self._changed:
            return list(self._attempts)

    def sent_ids(self) -> list[str]:
        """The ids of the delivered notifications, oldest first."""
        return [n.id for n in self.sent]

    def fail_next(self, n: int = 1, exc: FailureScript | None = None) -> None:
        """Make the next ``n`` calls of :meth:`send` raise instead of delivering.

        Args:
            n: How many calls fail; calls to this method add up.
            exc: The exception to raise, or a function from the notification to one;
                by default a ``DeliveryFailed`` naming the notification. Any exception
                type may be scripted, to test how a caller treats a misbehaving channel.

        Raises:
            ValidationError: ``n`` is not a whole number of at least 0.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValidationError(
                [("n", f"must be a whole number of calls, 0 or more, not {n!r}")],
                subject="fail_next",
            )
        with self._changed:
            self._failures.extend([exc] * n)

    def send(self, notification: Notification) -> None:
        """Record ``notification`` as delivered, or raise the next scripted failure.

        Raises:
            DeliveryFailed: scripted by :meth:`fail_next` (by default).
            Exception: whatever else :meth:`fail_next` scripted.
        """
        with self._changed:
            self._attempts.append(notification)
            failing = bool(self._failures)
            script = self._failures.popleft() if failing else None
            if not failing:
                self._sent.append(notification)
            self._changed.notify_all()
        if failing:
            raise _failure(script, notification)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Notification]:
        """Block until at least ``count`` notifications were delivered; return them.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._sent) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._sent)} of {count} notifications arrived")
                self._changed.wait(left)
            return list(self._sent)

    def clear(self) -> None:
        """Forget what was sent and attempted, and any scripted failures."""
        with self._changed:
            self._sent.clear()
            self._attempts.clear()
            self._failures.clear()


def _failure(script: FailureScript | None, notification: Notification) -> Exception:
    if script is None:
        return DeliveryFailed(notification.channel, notification.id, "scripted failure")
    if isinstance(script, Exception):
        return script
    return script(notification)
