"""Every channel closedloop ships, through the published Notifier contract suite.

The recording and callback notifiers use the method form a third party may write; the
webhook and SMTP notifiers use the fixture form, each with a real server on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import pytest

from closedloop.adapters.callback import CallbackNotifier
from closedloop.adapters.smtp import SMTPNotifier
from closedloop.adapters.webhook import WebhookNotifier, verify
from closedloop.engine.ports import Notification, Notifier
from closedloop.testing.notifiers import NotifierContract, ReceivedMessage, RecordingNotifier
from tests.loopback import HTTPReceiver, SMTPReceiver

SECRET = b"contract-suite secret of 32 byte"


class TestRecordingNotifier(NotifierContract):
    def make_notifier(self) -> Notifier:
        return RecordingNotifier()

    def make_failing_notifier(self) -> Notifier:
        failing = RecordingNotifier()
        failing.fail_next(1)
        return failing

    def received(self, notifier: Notifier) -> Sequence[ReceivedMessage]:
        assert isinstance(notifier, RecordingNotifier)
        return [ReceivedMessage(n.id, n.body, n.subject) for n in notifier.sent]


class TestCallbackNotifier(NotifierContract):
    def make_notifier(self) -> Notifier:
        self.pushed: list[Notification] = []
        return CallbackNotifier(self.pushed.append)

    def make_failing_notifier(self) -> Notifier:
        def push_service_down(notification: Notification) -> None:
            raise ConnectionResetError("push service reset the connection")

        return CallbackNotifier(push_service_down)

    def received(self, notifier: Notifier) -> Sequence[ReceivedMessage]:
        return [ReceivedMessage(n.id, n.body, n.subject) for n in self.pushed]


class TestWebhookNotifier(NotifierContract):
    @pytest.fixture
    def receiver(self) -> Iterator[HTTPReceiver]:
        server = HTTPReceiver()
        yield server
        server.close()

    @pytest.fixture
    def notifier(self, receiver: HTTPReceiver) -> Iterator[Notifier]:
        with WebhookNotifier(receiver.url, secrets=SECRET, allow_hosts=["127.0.0.1"]) as made:
            yield made

    @pytest.fixture
    def failing_notifier(self, receiver: HTTPReceiver) -> Iterator[Notifier]:
        receiver.script(503)
        with WebhookNotifier(receiver.url, secrets=SECRET, allow_hosts=["127.0.0.1"]) as made:
            yield made

    @pytest.fixture
    def inbox(self, receiver: HTTPReceiver) -> object:
        def read() -> list[ReceivedMessage]:
            got = []
            for request in receiver.requests:
                verify(request.headers, request.body, SECRET)
                payload = json.loads(request.body)
                got.append(
                    ReceivedMessage(
                        request.headers["webhook-id"], payload["body"], payload["subject"]
                    )
                )
            return got

        return read


class TestSMTPNotifier(NotifierContract):
    @pytest.fixture
    def receiver(self) -> Iterator[SMTPReceiver]:
        server = SMTPReceiver()
        yield server
        server.close()

    def smtp(self, port: int) -> SMTPNotifier:
        book = {self.recipient: "ops@water.example"}
        return SMTPNotifier(
            "127.0.0.1", port, sender="hotline@city.example", addresses=book, security="none"
        )

    @pytest.fixture
    def notifier(self, receiver: SMTPReceiver) -> Notifier:
        return self.smtp(receiver.port)

    @pytest.fixture
    def failing_notifier(self, receiver: SMTPReceiver) -> Notifier:
        receiver.refuse = {"ops@water.example"}
        return self.smtp(receiver.port)

    @pytest.fixture
    def inbox(self, receiver: SMTPReceiver) -> object:
        def read() -> list[ReceivedMessage]:
            messages = [mail.message for mail in receiver.mails]
            return [
                ReceivedMessage(m["X-Closedloop-Id"], m.get_content(), m["Subject"])
                for m in messages
            ]

        return read
