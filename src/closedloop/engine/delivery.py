"""Delivering the outbox: at least once, with a stable id, retries and dead letters.

Each sweep claims due messages with a lease (the store counts the attempt at claim
time, so a message that kills its worker still reaches the limit), sends each through
its channel's notifier and records the outcome: delivered; retried later with
exponential backoff and jitter; disabled when the endpoint is gone; or dead-lettered
after ``max_attempts``, to be inspected and re-queued. A worker whose lease expired
has its late outcome discarded by the store.
"""

from __future__ import annotations

import inspect
import random
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from closedloop.engine.model import ReporterContact
from closedloop.engine.ports import (
    CaseStore,
    MessageBody,
    Notification,
    Notifier,
    OutboxMessage,
    OutboxStatus,
)
from closedloop.errors import DeliveryFailed, EndpointGone, NotifierUnusable, UnknownName

NOTIFIER_EXPECTED = (
    "an object with a synchronous send(notification) method that returns once the "
    "message is accepted (wrap a function in closedloop.adapters.callback.CallbackNotifier)"
)
"""What a notification channel must be, as errors word it."""


def notifier_problem(candidate: object) -> str | None:
    """What ``candidate`` is, when it cannot be a notifier; ``None`` when it can.

    A notifier has a ``send`` method that is not ``async def``: the outbox marks a
    message delivered when ``send`` returns, and it never awaits a coroutine.
    """
    name = type(candidate).__name__
    kind = f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
    if isinstance(candidate, type):
        return f"the class {candidate.__name__}, not an instance of it"
    send = getattr(candidate, "send", None)
    if send is None:
        if inspect.isfunction(candidate) or inspect.ismethod(candidate):
            return f"the function {getattr(candidate, '__name__', '?')!r}, which has no send method"
        return f"{kind} with no send method"
    if not callable(send):
        return f"{kind} whose send is a {type(send).__name__}, not a method"
    if inspect.iscoroutinefunction(send) or inspect.isasyncgenfunction(send):
        return f"{kind} whose send is async def (it would never run, yet count as delivered)"
    return None


def checked_notifier(candidate: object, what: str = "notifier") -> Notifier:
    """``candidate`` as a notifier.

    Raises:
        NotifierUnusable: it has no ``send`` method, or its ``send`` is ``async def``.
    """
    problem = notifier_problem(candidate)
    if problem is not None:
        raise NotifierUnusable(what, problem, NOTIFIER_EXPECTED)
    return candidate  # type: ignore[return-value]


def checked_channels(notifier: object, channels: Collection[str]) -> dict[str, Notifier]:
    """Notifiers by channel name from ``Engine(notifier=...)``: one notifier serves
    every channel (``"*"``); a mapping names channels of the workflow (``channels``)
    and ``"*"`` for the rest.

    Raises:
        NotifierUnusable: a notifier is not one (see :func:`checked_notifier`), or a
            mapping key is not text.
        UnknownName: a mapping names a channel no notification rule of the workflow uses.
    """
    if notifier is None:
        return {}
    if not isinstance(notifier, Mapping):
        return {"*": checked_notifier(notifier)}
    found: dict[str, Notifier] = {}
    for name, one in notifier.items():
        if not isinstance(name, str):
            raise NotifierUnusable(
                "a key of notifier", f"a {type(name).__name__}", "a channel name (text)"
            )
        if name != "*" and name not in channels:
            raise UnknownName("notification channel", name, channels)
        found[name] = checked_notifier(one, f"notifier[{name!r}]")
    return found


class DeliveryOutcome(StrEnum):
    """What became of one attempt to send a message (counted in a :class:`DeliveryReport`)."""

    DELIVERED = "delivered"
    """The channel accepted it."""
    RETRIED = "retried"
    """It failed this time; it waits for a later attempt."""
    DEAD = "dead"
    """It reached the attempt limit; it waits as a dead letter."""
    DISABLED = "disabled"
    """The endpoint is gone for good; it is not tried again."""

    @property
    def status(self) -> OutboxStatus:
        """The status the message is left in."""
        return _STATUS[self]


_STATUS: Mapping[DeliveryOutcome, OutboxStatus] = {
    DeliveryOutcome.DELIVERED: "delivered",
    DeliveryOutcome.RETRIED: "pending",
    DeliveryOutcome.DEAD: "dead",
    DeliveryOutcome.DISABLED: "disabled",
}


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one delivery sweep did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    disabled: int = 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how far apart a message is tried.

    Args:
        max_attempts: Attempts before a message becomes a dead letter.
        first_delay: The wait after the first failure; it doubles per attempt.
        max_delay: The longest wait between two attempts.
        jitter: The fraction of the wait drawn at random (spreads retries out).
    """

    max_attempts: int = 8
    first_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)
    jitter: float = 0.2

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait before attempt ``attempts + 1``."""
        base: timedelta = min(self.first_delay * (2 ** max(attempts - 1, 0)), self.max_delay)
        return base * (1 - self.jitter * rng.random())


class Deliverer:
    """Sends claimed outbox messages through the notifiers of their channels.

    Args:
        store: Where the outbox lives.
        channels: Notifiers by channel name; ``"*"`` serves channels not named.
        owner: Names this worker on its leases.
        lease: How long a claim is held.
        policy: Retries and dead letters.
        rng: Randomness for jitter (seed it in tests).
    """

    def __init__(
        self,
        store: CaseStore,
        channels: Mapping[str, Notifier],
        *,
        owner: str,
        lease: timedelta,
        policy: RetryPolicy,
        rng: random.Random,
    ) -> None:
        self._store = store
        self._channels = dict(channels)
        self._owner = owner
        self._lease = lease
        self._policy = policy
        self._rng = rng

    def deliver(
        self, now: datetime, *, batch: int, should_stop: Callable[[], bool] | None = None
    ) -> DeliveryReport:
        """Send every message due at ``now``, a batch of claims at a time (until
        ``should_stop()`` answers ``True`` before a claim)."""
        counts: Counter[DeliveryOutcome] = Counter()
        while should_stop is None or not should_stop():
            claimed = self._store.claim_outbox(
                now, owner=self._owner, lease=self._lease, limit=batch
            )
            if not claimed:
                break
            for message in claimed:
                counts[self._send(message, now)] += 1
        return DeliveryReport(**{outcome.value: counts[outcome] for outcome in DeliveryOutcome})

    def _send(self, message: OutboxMessage, now: datetime) -> DeliveryOutcome:
        if message.attempts > self._policy.max_attempts:  # its worker died mid-send
            return self._finish(message, DeliveryOutcome.DEAD, "attempt limit reached")
        notifier = self._channels.get(message.channel) or self._channels.get("*")
        sent: Notification | None = None
        try:
            if notifier is None:
                raise LookupError(f"no notifier for channel {message.channel!r}")
            sent = self._notification(message)
            answer: object = notifier.send(sent)  # type: ignore[func-returns-value]
            if inspect.isawaitable(answer):
                _close(answer)
                reason = "send returned an awaitable, so nothing was sent (send must not be async)"
                raise DeliveryFailed(message.channel, message.id, reason)
        except EndpointGone as exc:
            gone = masked(str(exc), sent.contact if sent else None)
            return self._finish(message, DeliveryOutcome.DISABLED, gone)
        except Exception as exc:  # every failure is recorded and retried, never lost
            error = masked(f"{type(exc).__name__}: {exc}", sent.contact if sent else None)
            if message.attempts >= self._policy.max_attempts:
                return self._finish(message, DeliveryOutcome.DEAD, error)
            wait = self._policy.delay(message.attempts, self._rng)
            return self._finish(message, DeliveryOutcome.RETRIED, error, now + wait)
        return self._finish(message, DeliveryOutcome.DELIVERED, None)

    def _finish(
        self,
        message: OutboxMessage,
        outcome: DeliveryOutcome,
        error: str | None,
        next_attempt_at: datetime | None = None,
    ) -> DeliveryOutcome:
        self._store.finish_outbox(
            message, status=outcome.status, error=error, next_attempt_at=next_attempt_at
        )
        return outcome

    def _notification(self, message: OutboxMessage) -> Notification:
        contact = None
        if message.recipient == "reporter" and message.case_id is not None:
            with self._store.transaction(read_only=True) as tx:
                contact = tx.get_contact(message.case_id)
        text = MessageBody.from_payload(message.payload)
        return Notification(
            id=message.id,
            case_id=message.case_id,
            event=message.event,
            channel=message.channel,
            recipient=message.recipient,
            subject=text.subject,
            body=text.body,
            data=text.data,
            attempt=message.attempts,
            contact=contact,
        )


MASK = "***"
"""What stands for a reporter's contact value in a stored error."""


def masked(error: str, contact: ReporterContact | None) -> str:
    """``error`` with the reporter's name, phone and email masked: a channel's error
    may quote what it was given (a gateway URL with the phone number), and the outbox
    stores the error while it never stores contact data."""
    if contact is None:
        return error
    values = [contact.phone, contact.email, contact.name]
    if contact.phone:
        values.append("".join(c for c in contact.phone if c.isdigit()))
    for value in sorted({v for v in values if v and len(v) >= 2}, key=len, reverse=True):
        error = error.replace(value, MASK)
    return error


def _close(awaitable: object) -> None:
    """Close a coroutine that will never be awaited (no "never awaited" warning)."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()
