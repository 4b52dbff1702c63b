"""The Notifier contract suite, and a recording notifier, for channels' own tests.

A third-party channel (an SMS gateway, WeChat Work, a pager) proves it keeps the
engine's promises by subclassing :class:`NotifierContract` in a test module. Say how
to make the channel and how to read what its far end received, as methods::

    from closedloop.testing.notifiers import NotifierContract, ReceivedMessage

    class TestSMSNotifier(NotifierContract):
        def make_notifier(self):
            self.gateway = FakeGateway()               # your test double of the far end
            return SMSNotifier(self.gateway.url)

        def make_failing_notifier(self):
            return SMSNotifier("http://127.0.0.1:9")   # nothing listens there

        def received(self, notifier):
            return [ReceivedMessage(id=m.ref, body=m.text) for m in self.gateway.messages]

or as fixtures of the names ``notifier``, ``failing_notifier`` and ``inbox`` (a
function returning what arrived so far), which may use other fixtures, such as a
server started per test. The suite checks that a sent notification arrives once with
its id, that non-ASCII text arrives intact, and that failures surface as
``DeliveryFailed`` or ``EndpointGone`` - never as another exception type.

This module imports pytest; ``closedloop.testing`` does not. For pytest's detailed
assertion messages, call ``pytest.register_assert_rewrite("closedloop.testing.notifiers")``
in a ``conftest.py`` before importing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from closedloop.engine.model import ReporterContact
from closedloop.engine.ports import Notification, Notifier
from closedloop.errors import DeliveryFailed, EndpointGone
from closedloop.testing.recording import FailureScript, RecordingNotifier

__all__ = [
    "FailureScript",
    "NotifierContract",
    "ReceivedMessage",
    "RecordingNotifier",
    "sample_notification",
]

Inbox = Callable[[], Sequence["ReceivedMessage"]]

SAMPLE_CONTACT = ReporterContact(name="张三", phone="13800000000", email="zhang.san@example.org")
CHINESE_SUBJECT = "【红牌】案件 CL-2026-0001 已超时：路灯不亮 🚨"
CHINESE_BODY = (
    "市政工程处：\n您单位承办的“人民路 12 号路灯不亮”已超过办理时限（3 个工作日）。\n"
    "请于今日 17:00 前反馈办理结果。— Café №5, naïve résumé.\n"
)


@dataclass(frozen=True)
class ReceivedMessage:
    """What the far end of a channel got, as the contract compares it.

    Attributes:
        id: The notification id as the receiver sees it (a header, a reference field).
        body: The text received.
        subject: The subject received, or ``None`` for channels without subjects.
    """

    id: str
    body: str
    subject: str | None = None


def sample_notification(**changes: Any) -> Notification:
    """A valid notification about a dispatched case, in Chinese; ``changes`` override fields."""
    fields: dict[str, Any] = {
        "id": "ntf-0001",
        "case_id": "CL-2026-0001",
        "event": "dispatch",
        "channel": "contract",
        "recipient": "unit:water-company",
        "subject": "新派单：CL-2026-0001 供水管道漏水",
        "body": "请签收：人民路 12 号供水管道漏水（类别：供水 › 管网漏损）。\n",
        "data": {"category": "01.02", "category_name": "供水 › 管网漏损", "state": "assigned"},
        "attempt": 1,
    }
    fields.update(changes)
    return Notification(**fields)


def _normalised(text: str) -> str:
    return text.replace("\r\n", "\n").rstrip("\n")


class NotifierContract:
    """What every Notifier must do. Subclass it and provide the channel (see the module).

    Class attributes a subclass may change: ``recipient`` (the logical recipient the
    suite sends to) and ``delivery_timeout`` (seconds to wait for a message to show up
    at the far end, for channels that deliver in the background).
    """

    recipient = "unit:water-company"
    delivery_timeout = 5.0

    # -- what a subclass provides --------------------------------------------------

    def make_notifier(self) -> Notifier:
        """Override: the channel under test, delivering to a far end you can read."""
        raise NotImplementedError("subclass the contract and define make_notifier or notifier")

    def make_failing_notifier(self) -> Notifier:
        """Override: the channel pointed at a far end that fails (down, or refusing)."""
        raise NotImplementedError(
            "subclass the contract and define make_failing_notifier or failing_notifier"
        )

    def received(self, notifier: Notifier) -> Sequence[ReceivedMessage]:
        """Override: what the far end of ``notifier`` has received so far, oldest first."""
        raise NotImplementedError("subclass the contract and define received or inbox")

    @pytest.fixture
    def notifier(self) -> Iterator[Notifier]:
        """The channel under test (from :meth:`make_notifier`), closed afterwards."""
        made = self.make_notifier()
        yield made
        close = getattr(made, "close", None)
        if callable(close):
            close()

    @pytest.fixture
    def failing_notifier(self) -> Notifier:
        """The channel pointed at a failing far end (from :meth:`make_failing_notifier`)."""
        return self.make_failing_notifier()

    @pytest.fixture
    def inbox(self, notifier: Notifier) -> Inbox:
        """Reads what the far end received so far (from :meth:`received`)."""
        return lambda: self.received(notifier)

    def notification(self, **changes: Any) -> Notification:
        """A sample notification to ``recipient``; ``changes`` override its fields.

        Addressed to ``reporter``, it carries sample contact data, as the engine fills it.
        """
        fields: dict[str, Any] = {"recipient": self.recipient, **changes}
        if fields["recipient"] == "reporter":
            fields.setdefault("contact", SAMPLE_CONTACT)
        return sample_notification(**fields)

    def arrived(self, inbox: Inbox, count: int) -> Sequence[ReceivedMessage]:
        """What the far end holds once ``count`` messages are there (or the wait ends)."""
        deadline = time.monotonic() + self.delivery_timeout
        got = inbox()
        while len(got) < count and time.monotonic() < deadline:
            time.sleep(0.02)
            got = inbox()
        return got

    # -- the contract --------------------------------------------------------------

    def test_a_sent_notification_arrives_once_with_its_id(
        self, notifier: Notifier, inbox: Inbox
    ) -> None:
        sent = self.notification(id="ntf-once-1")
        notifier.send(sent)
        got = self.arrived(inbox, 1)
        assert [m.id for m in got] == [sent.id], f"expected exactly {sent.id!r}, got {got!r}"

    def test_each_notification_arrives_under_its_own_id(
        self, notifier: Notifier, inbox: Inbox
    ) -> None:
        first, second = self.notification(id="ntf-a-1"), self.notification(id="ntf-b-2")
        notifier.send(first)
        notifier.send(second)
        ids = sorted(m.id for m in self.arrived(inbox, 2))
        assert ids == [first.id, second.id], f"expected one of each, got {ids!r}"

    def test_non_ascii_text_arrives_intact(self, notifier: Notifier, inbox: Inbox) -> None:
        sent = self.notification(id="ntf-text-1", subject=CHINESE_SUBJECT, body=CHINESE_BODY)
        notifier.send(sent)
        (got,) = self.arrived(inbox, 1)
        assert _normalised(sent.body) in _normalised(got.body), f"body changed: {got.body!r}"
        if got.subject is not None:
            assert got.subject == sent.subject, f"subject changed: {got.subject!r}"

    def test_every_attempt_carries_the_same_id(self, notifier: Notifier, inbox: Inbox) -> None:
        first = self.notification(id="ntf-retry-1", attempt=1)
        notifier.send(first)
        notifier.send(first.model_copy(update={"attempt": 2}))
        ids = {m.id for m in self.arrived(inbox, 1)}
        assert ids == {first.id}, f"a retry must keep the id {first.id!r}; got {ids!r}"

    def test_a_failure_is_delivery_failed_or_endpoint_gone(
        self, failing_notifier: Notifier
    ) -> None:
        sent = self.notification(id="ntf-fail-1")
        with pytest.raises((DeliveryFailed, EndpointGone)) as raised:
            failing_notifier.send(sent)
        if isinstance(raised.value, DeliveryFailed):
            assert raised.value.message_id == sent.id, "DeliveryFailed must name the message"

    def test_hostile_text_raises_nothing_but_delivery_errors(
        self, notifier: Notifier, inbox: Inbox
    ) -> None:
        sent = self.notification(
            id="ntf-hostile-1",
            subject="路灯\r\nBcc: someone@example.org\r\nX-Injected: yes",
            body="第一行\r\n.\r\nQUIT\r\n\x00\u2028末行",
        )
        try:
            notifier.send(sent)
        except (DeliveryFailed, EndpointGone):
            return  # refusing is allowed; raising anything else is not
        ids = [m.id for m in self.arrived(inbox, 1)]
        assert ids == [sent.id], f"delivered, so it must arrive once as {sent.id!r}; got {ids!r}"
