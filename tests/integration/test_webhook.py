"""WebhookNotifier against a real HTTP server on 127.0.0.1, and the receiver's verify()."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any

import httpx
import pytest

from closedloop.adapters.webhook import WebhookNotifier, generate_secret, sign, verify
from closedloop.engine.model import ReporterContact
from closedloop.errors import (
    DeliveryFailed,
    EndpointGone,
    MissingDependency,
    SignatureInvalid,
    UnsafeTarget,
    ValidationError,
)
from closedloop.testing import ManualClock
from closedloop.testing.notifiers import sample_notification
from tests.loopback import HANG, HTTPReceiver, ReceivedRequest

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks example secret
NEW_SECRET = b"a new key of thirty-two bytes!!!"
LOOPBACK = ("127.0.0.1",)


@pytest.fixture
def receiver() -> Iterator[HTTPReceiver]:
    server = HTTPReceiver()
    yield server
    server.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def notifier(receiver: HTTPReceiver, clock: ManualClock) -> Iterator[WebhookNotifier]:
    with WebhookNotifier(
        receiver.url, secrets=SECRET, allow_hosts=LOOPBACK, clock=clock, timeout=0.5
    ) as made:
        yield made


def at(request: ReceivedRequest) -> datetime:
    return datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)


def test_the_standard_webhooks_test_vector_reproduces() -> None:
    body = b'{"test": 2432232314}'
    assert sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, SECRET) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_retries_keep_one_id_and_sign_each_attempt_afresh(
    receiver: HTTPReceiver, notifier: WebhookNotifier, clock: ManualClock
) -> None:
    receiver.script(500, 500, HANG)
    outcomes: list[str] = []
    for attempt in range(1, 5):
        try:
            notifier.send(sample_notification(id="ntf-7", attempt=attempt))
            outcomes.append("delivered")
        except DeliveryFailed as exc:
            outcomes.append(exc.reason)
        clock.advance(seconds=30 * attempt)  # the outbox's backoff between attempts

    assert outcomes[:2] == ["answered HTTP 500"] * 2
    assert "timed out" in outcomes[2]
    assert outcomes[3] == "delivered"
    requests = receiver.requests
    assert len(requests) == 4
    assert {r.headers["webhook-id"] for r in requests} == {"ntf-7"}
    assert len({r.headers["webhook-timestamp"] for r in requests}) == 4
    assert len({r.body for r in requests}) == 1  # only the timestamp and signature change
    for request in requests:
        verify(request.headers, request.body, [SECRET], now=at(request) + timedelta(seconds=2))


@pytest.fixture
def signed(receiver: HTTPReceiver, notifier: WebhookNotifier) -> ReceivedRequest:
    notifier.send(sample_notification(id="ntf-signed"))
    (request,) = receiver.requests
    return request


def _change_body(h: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return h, body.replace("管网".encode(), "管线".encode())


def _change_id(h: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return {**h, "webhook-id": "ntf-other"}, body


def _change_timestamp(h: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
    return {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, body


def _drop(name: str) -> Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]:
    return lambda h, body: ({k: v for k, v in h.items() if k != name}, body)


@pytest.mark.parametrize(
    "tamper",
    [
        _change_body,
        _change_id,
        _change_timestamp,
        _drop("webhook-id"),
        _drop("webhook-timestamp"),
        _drop("webhook-signature"),
    ],
    ids=["body", "id", "timestamp", "no-id", "no-timestamp", "no-signature"],
)
def test_a_changed_request_fails_verification(signed: ReceivedRequest, tamper: Any) -> None:
    headers, body = tamper(signed.headers, signed.body)
    assert body != signed.body or headers != signed.headers
    with pytest.raises(SignatureInvalid):
        verify(headers, body, SECRET, now=at(signed))


@pytest.mark.parametrize(
    ("skew", "verifies"), [(299, True), (301, False), (-299, True), (-301, False)]
)
def test_the_timestamp_must_lie_within_the_tolerance(
    signed: ReceivedRequest, skew: int, verifies: bool
) -> None:
    now = at(signed) + timedelta(seconds=skew)
    if verifies:
        verify(signed.headers, signed.body, SECRET, now=now)
    else:
        with pytest.raises(SignatureInvalid, match="tolerance"):
            verify(signed.headers, signed.body, SECRET, now=now)


def test_a_wrong_secret_fails_verification(signed: ReceivedRequest) -> None:
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        verify(signed.headers, signed.body, generate_secret(), now=at(signed))


def test_during_a_rotation_either_secret_verifies(
    receiver: HTTPReceiver, clock: ManualClock
) -> None:
    with WebhookNotifier(
        receiver.url, secrets=[SECRET, NEW_SECRET], allow_hosts=LOOPBACK, clock=clock
    ) as notifier:
        notifier.send(sample_notification())
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verify(request.headers, request.body, [NEW_SECRET], now=at(request))
    verify(request.headers, request.body, SECRET, now=at(request))


def test_410_gives_up_on_that_message_only(
    receiver: HTTPReceiver, notifier: WebhookNotifier
) -> None:
    receiver.script(410, 204)
    with pytest.raises(EndpointGone):
        notifier.send(sample_notification(id="ntf-1"))
    notifier.send(sample_notification(id="ntf-2"))  # a 410 disables no later message
    assert [r.headers["webhook-id"] for r in receiver.requests] == ["ntf-1", "ntf-2"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failure_and_is_not_followed(
    receiver: HTTPReceiver, notifier: WebhookNotifier, status: int
) -> None:
    receiver.script((status, {"location": f"http://127.0.0.1:{receiver.port}/elsewhere"}))
    with pytest.raises(DeliveryFailed, match="redirect"):
        notifier.send(sample_notification())
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_host_client_that_follows_redirects_still_does_not(receiver: HTTPReceiver) -> None:
    receiver.script((307, {"location": f"http://127.0.0.1:{receiver.port}/elsewhere"}))
    with httpx.Client(follow_redirects=True) as client:
        notifier = WebhookNotifier(
            receiver.url, secrets=SECRET, allow_hosts=LOOPBACK, client=client
        )
        with pytest.raises(DeliveryFailed, match="redirect"):
            notifier.send(sample_notification())
        notifier.close()  # not ours to close: the host's client stays usable
        assert not client.is_closed
    assert [r.path for r in receiver.requests] == ["/hook"]


@pytest.mark.parametrize("status", [200, 202, 204])
def test_any_2xx_is_success(receiver: HTTPReceiver, notifier: WebhookNotifier, status: int) -> None:
    receiver.script(status, 500)
    notifier.send(sample_notification(id="ntf-ok"))  # returns: delivered, nothing raised
    (request,) = receiver.requests  # one attempt, not retried
    assert request.headers["webhook-id"] == "ntf-ok"
    verify(request.headers, request.body, [SECRET], now=at(request))
    with pytest.raises(DeliveryFailed, match="500"):  # the next answer is judged afresh
        notifier.send(sample_notification(id="ntf-next"))


@pytest.mark.parametrize("status", [400, 404, 429, 503])
def test_other_statuses_are_retryable_failures(
    receiver: HTTPReceiver, notifier: WebhookNotifier, status: int
) -> None:
    receiver.script(status)
    with pytest.raises(DeliveryFailed, match=str(status)):
        notifier.send(sample_notification())


def test_a_closed_port_is_a_retryable_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        WebhookNotifier(f"http://127.0.0.1:{port}/", secrets=SECRET, allow_hosts=LOOPBACK) as n,
        pytest.raises(DeliveryFailed, match="ConnectError"),
    ):
        n.send(sample_notification())


def test_the_body_is_utf8_json_without_contact_data_for_units(
    receiver: HTTPReceiver, notifier: WebhookNotifier
) -> None:
    contact = ReporterContact(name="张三", phone="13800000000", email="zhang@example.org")
    notifier.send(sample_notification(recipient="unit:water-company", contact=contact))
    notifier.send(sample_notification(id="ntf-r", recipient="reporter", contact=contact))
    unit, reporter = (json.loads(r.body) for r in receiver.requests)
    assert "供水 › 管网漏损".encode() in receiver.requests[0].body  # not \\u-escaped
    assert unit["data"]["category_name"] == "供水 › 管网漏损"
    assert "contact" not in unit
    assert "13800000000" not in receiver.requests[0].body.decode()
    assert reporter["contact"] == {
        "name": "张三",
        "phone": "13800000000",
        "email": "zhang@example.org",
    }
    assert "attempt" not in unit
    assert receiver.requests[0].headers["content-type"] == "application/json"


def test_a_name_is_pinned_to_the_address_that_was_checked(receiver: HTTPReceiver) -> None:
    url = f"http://localhost:{receiver.port}/hook"
    with WebhookNotifier(url, secrets=SECRET, allow_hosts=("127.0.0.1", "::1")) as notifier:
        notifier.send(sample_notification())
    (request,) = receiver.requests
    assert request.headers["host"] == f"localhost:{receiver.port}"


def test_a_name_that_later_resolves_to_loopback_is_refused_at_send(
    receiver: HTTPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: public when configured, loopback when sending. DNS is scripted here
    (the one stub in this module); the server behind 127.0.0.1 is real."""
    answers = iter(["93.184.215.14", "127.0.0.1"])

    def rebinding(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://hooks.example.org:{receiver.port}/hook"
    with (
        WebhookNotifier(url, secrets=SECRET) as notifier,
        pytest.raises(DeliveryFailed, match="loopback"),
    ):
        notifier.send(sample_notification())
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://10.0.0.1/hook", "private"),
        ("http://192.168.1.20/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.100.100.200/latest/meta-data/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://user:pass@example.org/hook", "credentials"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "private"),
        ("http://2130706433/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://224.0.0.1/hook", "multicast"),
        ("ftp://example.org/hook", "http"),
    ],
)
def test_refused_targets(url: str, reason: str) -> None:
    with pytest.raises(UnsafeTarget, match=reason) as raised:
        WebhookNotifier(url, secrets=SECRET)
    assert "user:pass" not in str(raised.value)  # credentials never reach a message or a log


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("2002:7f00:1::", "a 6to4 address of 127.0.0.1, a loopback address"),
        ("2002:a9fe:a9fe::", "a 6to4 address of 169.254.169.254, a cloud metadata address"),
        ("2002:a00:1::", "a 6to4 address of 10.0.0.1, a private address"),
        ("2002:c0a8:114:1::", "a 6to4 address of 192.168.1.20, a private address"),
        ("2002:a9fe:1::", "a 6to4 address of 169.254.0.1, a link-local address"),
        ("2002:e000:1::", "a 6to4 address of 224.0.0.1, a multicast address"),
        ("2002:f000:1::", "a 6to4 address of 240.0.0.1, a "),  # private or reserved
        ("::ffff:169.254.169.254", "an IPv4-mapped address of 169.254.169.254, a cloud"),
        ("::ffff:127.0.0.1", "an IPv4-mapped address of 127.0.0.1, a loopback address"),
        ("::127.0.0.1", "an IPv4-compatible address of 127.0.0.1, a loopback address"),
        ("::10.0.0.1", "an IPv4-compatible address of 10.0.0.1, a private address"),
        ("::ffff:0:a00:1", "an IPv4-translated address of 10.0.0.1, a private address"),
        ("64:ff9b::7f00:1", "a NAT64 address of 127.0.0.1, a loopback address"),
        ("64:ff9b::a9fe:a9fe", "a NAT64 address of 169.254.169.254, a cloud metadata address"),
        ("64:ff9b::c0a8:114", "a NAT64 address of 192.168.1.20, a private address"),
        ("64:ff9b:1::808:808", "a local-use NAT64 address"),
        (  # client 127.0.0.1 behind the Teredo server 65.54.227.120
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "a Teredo address of 127.0.0.1, a loopback address",
        ),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "a Teredo address of 10.0.0.1, a private"),
        ("2001:0:4136:e378:8000:63bf:5601:5601", "a Teredo address of 169.254.169.254, a cloud"),
        ("fec0::1", "a deprecated site-local address"),
        ("fed0:1:2::3", "a deprecated site-local address"),
        ("feff:ffff::1", "a deprecated site-local address"),
    ],
)
def test_ipv6_forms_of_refused_addresses_are_refused(host: str, reason: str) -> None:
    url = f"http://[{host}]:8080/hook"
    with pytest.raises(UnsafeTarget) as raised:
        WebhookNotifier(url, secrets=SECRET)
    assert raised.value.reason.startswith(f"{ip_address(host)} is {reason}")
    assert raised.value.reason.endswith("; allow it in allow_hosts")


def test_a_network_the_host_allows_does_not_admit_metadata_inside_6to4() -> None:
    with pytest.raises(UnsafeTarget, match="metadata"):
        WebhookNotifier("http://[2002:a9fe:a9fe::]/", secrets=SECRET, allow_hosts=["2002::/16"])
    WebhookNotifier("http://[2002:a00:1::]/", secrets=SECRET, allow_hosts=["2002::/16"])


@pytest.mark.parametrize("host", ["2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"])
def test_public_ipv6_targets_are_accepted(host: str) -> None:
    notifier = WebhookNotifier(f"https://[{host}]/hook", secrets=SECRET)
    assert notifier.url == f"https://[{host}]/hook"
    notifier.close()


def test_allow_hosts_admits_what_it_names_but_not_metadata_through_a_network() -> None:
    WebhookNotifier("http://10.20.1.5/hook", secrets=SECRET, allow_hosts=["10.20.0.0/16"])
    with pytest.raises(UnsafeTarget, match="metadata"):
        WebhookNotifier("http://169.254.169.254/", secrets=SECRET, allow_hosts=["169.254.0.0/16"])
    WebhookNotifier("http://169.254.169.254/", secrets=SECRET, allow_hosts=["169.254.169.254"])
    with pytest.raises(UnsafeTarget, match="credentials"):
        WebhookNotifier("http://u:p@127.0.0.1/", secrets=SECRET, allow_hosts=LOOPBACK)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://[::1/", "https://[::1/"),  # an unclosed IPv6 bracket
        ("https://u:p@[::1/hook?token=1", "https://[::1/hook"),
        ("not-a-url", "not-a-url"),
    ],
)
def test_a_malformed_url_is_refused_as_typed_showing_what_was_given(url: str, shown: str) -> None:
    with pytest.raises(UnsafeTarget) as raised:
        WebhookNotifier(url, secrets=SECRET)
    assert raised.value.url == shown


@pytest.mark.parametrize(
    ("options", "field", "problem"),
    [
        ({"allow_hosts": ["10.0.0.0/33"]}, "allow_hosts[0]", "'10.0.0.0/33' is not a network"),
        ({"allow_hosts": ["a.example", 42]}, "allow_hosts[1]", "got 42"),
        ({"timeout": "5"}, "timeout", "must be a positive number of seconds, got '5'"),
        ({"timeout": 0}, "timeout", "must be a positive number of seconds, got 0"),
    ],
)
def test_malformed_options_are_validation_errors_naming_them(
    options: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        WebhookNotifier("https://example.org/hook", secrets=SECRET, **options)
    ((named, said),) = raised.value.errors
    assert named == field
    assert problem in said


@pytest.mark.parametrize(
    "secrets",
    [b"too short", "not-prefixed-base64", "whsec_!!!not base64!!!", "whsec_c2hvcnQ=", [], [42]],
)
def test_unusable_secrets_are_refused(secrets: Any) -> None:
    with pytest.raises(ValidationError, match="webhook secrets"):
        WebhookNotifier("https://example.org/hook", secrets=secrets, allow_hosts=["example.org"])


def test_without_httpx_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingDependency, match=r"closedloop\[http\]"):
        WebhookNotifier("https://example.org/hook", secrets=SECRET)
