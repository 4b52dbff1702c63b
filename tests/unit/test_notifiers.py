"""In-process channels and the receiver's verify(): no sockets involved."""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from closedloop.adapters.callback import CallbackNotifier, LoggingNotifier
from closedloop.adapters.webhook import decode_secrets, generate_secret, sign, verify
from closedloop.engine.model import ReporterContact
from closedloop.engine.ports import Notification
from closedloop.errors import (
    DeliveryFailed,
    EndpointGone,
    NaiveDatetime,
    NotifierUnusable,
    SignatureInvalid,
    ValidationError,
)
from closedloop.testing.notifiers import sample_notification
from closedloop.testing.recording import RecordingNotifier

NOW = datetime(2026, 1, 5, 9, tzinfo=UTC)
SECRET = generate_secret()


def signed_headers(
    body: bytes, *, msg_id: str = "ntf-1", at: datetime = NOW, secret: str = SECRET
) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": sign(msg_id, timestamp, body, secret),
    }


# -- verify ----------------------------------------------------------------------------


def test_verify_matches_header_names_in_any_case_and_takes_text_bodies() -> None:
    body = '{"subject":"新派单"}'
    verify(signed_headers(body.encode()), body, [SECRET], now=NOW)


def test_verify_accepts_headers_as_pairs_from_any_framework() -> None:
    class Pairs:
        def __init__(self, headers: dict[str, str]) -> None:
            self.headers = headers

        def items(self) -> list[tuple[str, str]]:
            return list(self.headers.items())

    verify(Pairs(signed_headers(b"{}")), b"{}", SECRET, now=NOW)


def test_verify_refuses_a_timestamp_that_is_not_integer_seconds() -> None:
    headers = {**signed_headers(b"{}"), "Webhook-Timestamp": f"{NOW.timestamp()}"}
    with pytest.raises(SignatureInvalid, match="integer"):
        verify(headers, b"{}", SECRET, now=NOW)


def test_verify_refuses_an_id_sent_twice_with_different_values() -> None:
    pairs = [*signed_headers(b"{}").items(), ("webhook-id", "ntf-2")]

    class Repeated:
        def items(self) -> list[tuple[str, str]]:
            return pairs

    with pytest.raises(SignatureInvalid, match="different values"):
        verify(Repeated(), b"{}", SECRET, now=NOW)


def test_verify_ignores_unknown_versions_and_garbage_but_needs_one_match() -> None:
    headers = signed_headers(b"{}")
    headers["Webhook-Signature"] = "v2,abc v1,!!! " + headers["Webhook-Signature"]
    verify(headers, b"{}", SECRET, now=NOW)
    headers["Webhook-Signature"] = "v1a,abc v2,xyz"
    with pytest.raises(SignatureInvalid, match="no v1 signature"):
        verify(headers, b"{}", SECRET, now=NOW)


def test_verify_needs_an_aware_now() -> None:
    with pytest.raises(NaiveDatetime):
        verify(signed_headers(b"{}"), b"{}", SECRET, now=datetime(2026, 1, 5, 9))


def test_verify_uses_the_system_clock_by_default() -> None:
    fresh = datetime.now(UTC)
    verify(signed_headers(b"{}", at=fresh), b"{}", SECRET)
    with pytest.raises(SignatureInvalid, match="old"):
        verify(signed_headers(b"{}", at=fresh - timedelta(minutes=6)), b"{}", SECRET)


def test_secrets_are_checked_and_listed_by_position() -> None:
    with pytest.raises(ValidationError) as raised:
        decode_secrets([SECRET, b"short", "abc"])
    assert raised.value.fields == ("secrets[1]", "secrets[2]")
    assert decode_secrets(SECRET) == decode_secrets([SECRET])
    assert len(decode_secrets(b"k" * 24)[0]) == 24


# -- CallbackNotifier -------------------------------------------------------------------


def test_a_callback_error_becomes_delivery_failed_with_its_cause() -> None:
    def push(notification: Notification) -> None:
        raise TimeoutError("push gateway slow")

    with pytest.raises(DeliveryFailed, match="TimeoutError") as raised:
        CallbackNotifier(push).send(sample_notification())
    assert isinstance(raised.value.__cause__, TimeoutError)


def test_a_callback_may_say_the_endpoint_is_gone() -> None:
    def push(notification: Notification) -> None:
        raise EndpointGone(notification.channel, "app:unit-42")

    with pytest.raises(EndpointGone):
        CallbackNotifier(push).send(sample_notification())


def test_an_async_callback_is_refused() -> None:
    async def push(notification: Notification) -> None:
        return None

    with pytest.raises(TypeError, match="synchronous"):
        CallbackNotifier(push)


def test_a_callback_that_is_not_a_synchronous_function_is_a_typed_refusal() -> None:
    async def push(notification: Notification) -> None:
        return None

    with pytest.raises(NotifierUnusable) as not_callable:
        CallbackNotifier(42)  # type: ignore[arg-type]
    with pytest.raises(NotifierUnusable) as not_sync:
        CallbackNotifier(push)
    assert (not_callable.value.what, not_callable.value.given) == (
        "CallbackNotifier's function",
        "an int",
    )
    assert not_sync.value.given == "the async function 'push'"
    assert "a synchronous function" in not_sync.value.expected


def test_a_callback_returning_an_awaitable_has_delivered_nothing() -> None:
    async def later() -> None:
        return None

    with pytest.raises(DeliveryFailed, match="awaitable"):
        CallbackNotifier(lambda n: later()).send(sample_notification())


# -- LoggingNotifier --------------------------------------------------------------------


def test_logging_leaves_out_contact_data_and_cannot_forge_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    contact = ReporterContact(name="张三", phone="13800000000", email="zhang@example.org")
    sent = sample_notification(
        recipient="reporter", contact=contact, body="您好\nFAKE LOG LINE: admin login"
    )
    with caplog.at_level(logging.INFO, logger="closedloop.notifications"):
        LoggingNotifier().send(sent)
    (record,) = caplog.records
    text = record.getMessage()
    assert "\n" not in text
    assert "您好\\nFAKE LOG LINE" in text
    assert sent.id in text
    assert sent.subject in text
    for private in ("张三", "13800000000", "zhang@example.org"):
        assert private not in text
    assert record.__dict__["notification_id"] == sent.id


# -- RecordingNotifier ------------------------------------------------------------------


def test_recording_scripts_failures_in_order_then_delivers() -> None:
    notifier = RecordingNotifier()
    notifier.fail_next(1)
    notifier.fail_next(1, RuntimeError("boom"))
    notifier.fail_next(1, lambda n: EndpointGone(n.channel, "x"))
    sent = sample_notification()
    for expected in (DeliveryFailed, RuntimeError, EndpointGone):
        with pytest.raises(expected):
            notifier.send(sent)
    notifier.send(sent)
    assert notifier.sent_ids() == [sent.id]
    assert len(notifier.attempts) == 4


def test_recording_is_safe_across_threads() -> None:
    notifier = RecordingNotifier()
    notifier.fail_next(50)
    failures: list[BaseException] = []

    def worker(k: int) -> None:
        for i in range(50):
            try:
                notifier.send(sample_notification(id=f"ntf-{k}-{i}"))
            except DeliveryFailed as exc:
                failures.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    assert len(notifier.wait_for(350, timeout=5)) >= 350
    for thread in threads:
        thread.join()
    assert len(failures) == 50
    assert len(notifier.sent) == 350
    assert len(set(notifier.sent_ids())) == 350


def test_recording_wait_for_times_out() -> None:
    with pytest.raises(TimeoutError, match="0 of 1"):
        RecordingNotifier().wait_for(1, timeout=0.05)


# -- docs/notifications.md --------------------------------------------------------------


def test_the_documented_receiver_accepts_a_signed_request_once_and_refuses_a_forged_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2, "the receiver and the own-channel examples"
    namespace: dict[str, Any] = {"__name__": "notifications_md"}
    for block in blocks:
        exec(compile(block, "docs/notifications.md", "exec"), namespace)
    body = json.dumps(
        {"id": "ntf-1", "event": "CaseAssigned", "case_id": "C-1", "subject": "新派单"}
    )
    fresh = datetime.now(UTC)
    headers = signed_headers(body.encode(), at=fresh, secret=namespace["SECRETS"][0])
    receive = namespace["receive"]
    assert receive(headers, body.encode()) == 204
    assert receive(headers, body.encode()) == 204
    assert capsys.readouterr().out.count("CaseAssigned C-1 新派单") == 1
    assert receive(headers, body.replace("C-1", "C-2").encode()) == 401
    assert callable(namespace["SMSNotifier"]("https://sms.example/send", "t").send)
