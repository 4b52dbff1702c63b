"""In-process channels: :class:`CallbackNotifier` hands notifications to a host function,
:class:`LoggingNotifier` writes them to a log."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

from closedloop.engine.ports import Notification
from closedloop.errors import DeliveryError, DeliveryFailed, NotifierUnusable

__all__ = ["CallbackNotifier", "LoggingNotifier"]

DEFAULT_LOGGER = "closedloop.notifications"


class CallbackNotifier:
    """Delivers by calling a host function, e.g. one that pushes to an internal app.

    The function receives the :class:`~closedloop.engine.ports.Notification` and
    returns when the message is accepted. It may raise ``DeliveryFailed`` or
    ``EndpointGone`` itself; any other exception it raises is wrapped in
    :class:`~closedloop.errors.DeliveryFailed` (the original is its ``__cause__``), so
    the outbox retries it. The function must be synchronous: the outbox needs to know
    that the message was accepted before it marks it delivered.

    Args:
        fn: The host function; its return value is ignored.

    Raises:
        NotifierUnusable: ``fn`` is not callable or is an ``async`` function.
    """

    def __init__(self, fn: Callable[[Notification], object]) -> None:
        expected = (
            "a synchronous function taking the notification and returning once the "
            "message is accepted"
        )
        if not callable(fn):
            name = type(fn).__name__
            given = f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
            raise NotifierUnusable("CallbackNotifier's function", given, expected)
        if inspect.iscoroutinefunction(fn):
            given = f"the async function {getattr(fn, '__name__', '?')!r}"
            raise NotifierUnusable("CallbackNotifier's function", given, expected)
        self._fn = fn

    def send(self, notification: Notification) -> None:
        """Call the function with ``notification``.

        Raises:
            DeliveryFailed: the function raised (anything but ``EndpointGone``), or
                returned an awaitable that would never run.
            EndpointGone: the function raised it.
        """
        try:
            result = self._fn(notification)
        except DeliveryError:
            raise
        except Exception as exc:
            reason = f"the callback raised {type(exc).__name__}: {exc}"[:300]
            raise DeliveryFailed(notification.channel, notification.id, reason) from exc
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()  # a coroutine never awaited; closing it avoids a second warning
            reason = "the callback returned an awaitable; nothing was delivered"
            raise DeliveryFailed(notification.channel, notification.id, reason)


class LoggingNotifier:
    """Writes each notification to a log; for development and as an audit of sends.

    One record per notification, with its id, event, case, channel, recipient,
    attempt, subject and body. The reporter's contact data is never logged. Subject
    and body are logged as ``repr`` so that line breaks in them cannot forge log lines;
    Chinese text stays readable. The same fields are attached to the record as
    ``extra`` (``notification_id``, ``event``, ``case_id``, ``recipient``) for
    structured log handlers.

    Args:
        logger: Where to log; ``logging.getLogger("closedloop.notifications")`` by default.
        level: The level of the records.
    """

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self._logger = logger or logging.getLogger(DEFAULT_LOGGER)
        self._level = level

    def send(self, notification: Notification) -> None:
        """Log one notification (never its contact data)."""
        self._logger.log(
            self._level,
            "notification %s (%s) for case %s to %s via %s, attempt %d: subject=%r body=%r",
            notification.id,
            notification.event,
            notification.case_id,
            notification.recipient,
            notification.channel,
            notification.attempt,
            notification.subject,
            notification.body,
            extra={
                "notification_id": notification.id,
                "event": notification.event,
                "case_id": notification.case_id,
                "recipient": notification.recipient,
            },
        )
