"""Signed webhooks over HTTP(S): the :class:`WebhookNotifier` channel (``http`` extra).

Each notification is POSTed as JSON and signed the Standard Webhooks way (see
:mod:`closedloop.adapters.webhook.signing`, where the signing lives). Where it may be
sent is checked first: by default only public internet addresses are reachable, so a
webhook URL typed into an admin screen cannot be used to probe the host's own network
(SSRF).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import Iterable
from ipaddress import ip_address
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from closedloop.adapters.webhook.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Secrets,
    decode_secrets,
    sign,
)
from closedloop.adapters.webhook.targets import (
    METADATA_HOSTS,
    Allowance,
    IPAddress,
    address_problem,
)
from closedloop.engine.clock import SystemClock
from closedloop.engine.ports import Clock, Notification
from closedloop.errors import (
    DeliveryFailed,
    EndpointGone,
    MissingDependency,
    UnsafeTarget,
    ValidationError,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["WebhookNotifier"]

_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,256}")


class _Target:
    """A parsed, checked webhook URL and what is needed to reach it safely."""

    def __init__(self, url: httpx.URL, shown: str, allowance: Allowance) -> None:
        self.url = url
        self.shown = shown
        self.host = url.raw_host.decode("ascii").lower().rstrip(".")
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.allowance = allowance
        self.trusted = allowance.allows_name(self.host)
        try:
            self.literal: IPAddress | None = ip_address(self.host)
        except ValueError:
            self.literal = None

    def addresses(self) -> list[IPAddress]:
        """The addresses to connect to, every one checked.

        Raises:
            UnsafeTarget: an address (or the host name) is refused.
            OSError: the name does not resolve.
        """
        if self.trusted:
            return []
        if self.host in METADATA_HOSTS:
            raise UnsafeTarget(
                self.shown, f"{self.host} is a cloud metadata service; list it in allow_hosts"
            )
        found = [self.literal] if self.literal is not None else _resolve(self.host, self.port)
        for address in found:
            problem = address_problem(address)
            if problem and not self.allowance.allows_address(address):
                where = f"{address} is" if self.literal else f"{self.host} resolves to {address},"
                raise UnsafeTarget(self.shown, f"{where} {problem}; allow it in allow_hosts")
        return found


class _Route(NamedTuple):
    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any]


def _resolve(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ip_address(info[4][0]) for info in infos))


def _shown(url: str) -> str:
    """``url`` without credentials or query, fit for messages and logs; a text that
    does not parse as a URL is shown up to its query, without anything before an ``@``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "https://[::1/": an unclosed IPv6 bracket
        head = url.split("?", 1)[0].split("#", 1)[0]
        scheme, sep, rest = head.partition("://")
        return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else head.rpartition("@")[2]
    if not parts.scheme or not parts.netloc:
        return url.split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def _netloc(url: str) -> str:
    try:
        return urlsplit(url).netloc
    except ValueError:  # httpx accepted what urllib does not: judge the text after "//"
        return url.partition("//")[2].split("/", 1)[0]


def _parse(httpx_module: Any, url: str, allowance: Allowance) -> _Target:
    shown = _shown(url)
    try:
        parsed: httpx.URL = httpx_module.URL(url)
    except Exception as exc:  # httpx raises InvalidURL or ValueError subclasses
        raise UnsafeTarget(shown, f"not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UnsafeTarget(shown, "only http:// and https:// URLs with a host are accepted")
    if parsed.userinfo or "@" in _netloc(url):
        raise UnsafeTarget(shown, "credentials (userinfo) in the URL are refused")
    return _Target(parsed, shown, allowance)


def _payload(notification: Notification) -> bytes:
    """The request body: the notification as UTF-8 JSON, identical on every attempt.

    Contact data rides along only when the recipient is the reporter (the message is
    for them, e.g. an SMS gateway needs the phone number); ``attempt`` is left out so
    the body does not change between retries.
    """
    fields = notification.model_dump(mode="json", exclude={"attempt", "contact"})
    if notification.recipient == "reporter" and notification.contact is not None:
        fields["contact"] = notification.contact.model_dump(mode="json", exclude_none=True)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookNotifier:
    """Delivers notifications as signed JSON POST requests to one URL.

    Outcomes: a 2xx answer is success; 410 raises :class:`~closedloop.errors.EndpointGone`
    for that message, which the outbox then keeps as ``disabled`` with the dead letters
    (the notifier itself stays usable: the next message is sent all the same); any
    other answer - 3xx included, redirects are never followed - and timeouts or
    connection errors raise :class:`~closedloop.errors.DeliveryFailed`.

    The URL is refused (:class:`~closedloop.errors.UnsafeTarget`) when it carries
    credentials, or its host is, or resolves to, a loopback, private, link-local,
    multicast, unspecified, reserved, site-local or cloud metadata address, or an IPv6
    address carrying such an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4,
    Teredo, NAT64) - unless ``allow_hosts`` names it (the rules are in
    :mod:`closedloop.adapters.webhook.targets`). Names are resolved again before
    every send (a name that later resolves to a refused address fails the attempt),
    and the request goes to the address that was checked, so DNS rebinding cannot
    slip between check and connect. A ``client`` you pass (for a proxy, say) resolves
    names itself: the check then stays, the pinning does not.

    Args:
        url: The receiver's ``http://`` or ``https://`` URL.
        secrets: The signing secret, or several during a rotation
            (see :mod:`closedloop.adapters.webhook.signing`).
        timeout: Seconds allowed for each network operation of a request.
        allow_hosts: Host names, addresses or networks (``10.20.0.0/16``) that the host
            application vouches for; they skip the address checks.
        client: An ``httpx.Client`` to send with; by default the notifier owns one that
            ignores proxy environment variables and ``.netrc``.
        clock: Where ``webhook-timestamp`` comes from; the system clock by default.

    Raises:
        UnsafeTarget: the URL is refused (see above).
        ValidationError: a secret or the timeout is not acceptable.
        MissingDependency: httpx is not installed (``pip install 'closedloop[http]'``).
    """

    def __init__(
        self,
        url: str,
        *,
        secrets: Secrets,
        timeout: float = 10.0,
        allow_hosts: Iterable[str] = (),
        client: httpx.Client | None = None,
        clock: Clock | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependency("httpx", "http", "WebhookNotifier") from exc
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            given = f"got {timeout!r}"
            raise ValidationError([("timeout", f"must be a positive number of seconds, {given}")])
        self._httpx = httpx
        self._keys = decode_secrets(secrets)
        self._timeout = float(timeout)
        allowed = [allow_hosts] if isinstance(allow_hosts, str) else allow_hosts
        self._target = _parse(httpx, url, Allowance(allowed))
        with contextlib.suppress(OSError):  # DNS may be down at start-up; sends check again
            self._target.addresses()
        self._owns_client = client is None
        self._client = client or httpx.Client(follow_redirects=False, trust_env=False)
        self._clock: Clock = clock or SystemClock()

    @property
    def url(self) -> str:
        """The target URL without credentials or query string."""
        return self._target.shown

    def send(self, notification: Notification) -> None:
        """POST one notification, signed for this attempt.

        Raises:
            DeliveryFailed: not accepted this time (non-2xx, timeout, connection or
                DNS failure, or the host now resolves to a refused address).
            EndpointGone: the endpoint answered 410 (to this message: the next one
                is sent all the same).
        """
        if not _HEADER_SAFE.fullmatch(notification.id):
            raise DeliveryFailed(
                notification.channel, notification.id, "the id cannot be sent as webhook-id"
            )
        body = _payload(notification)
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "closedloop-webhook",
            ID_HEADER: notification.id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(notification.id, timestamp, body, self._keys),
        }
        status = self._post(notification, body, headers)
        self._judge(notification, status)

    def _routes(self, notification: Notification) -> list[_Route]:
        """Where to connect: each checked address in turn, pinned (or the URL as is)."""
        target = self._target
        try:
            addresses = target.addresses()
        except UnsafeTarget as exc:
            raise DeliveryFailed(notification.channel, notification.id, exc.reason) from exc
        except OSError as exc:
            reason = f"cannot resolve {target.host}: {exc}"
            raise DeliveryFailed(notification.channel, notification.id, reason) from exc
        if target.literal is not None or not addresses or not self._owns_client:
            return [_Route(target.url, {}, {})]
        host_header = {"host": target.url.netloc.decode("ascii")}
        return [
            _Route(target.url.copy_with(host=str(a)), host_header, {"sni_hostname": target.host})
            for a in addresses
        ]

    def _post(self, notification: Notification, body: bytes, headers: dict[str, str]) -> int:
        httpx = self._httpx
        routes = self._routes(notification)
        try:
            for route in routes[:-1]:
                try:
                    return self._exchange(route, body, headers)
                except httpx.ConnectError:
                    continue  # the next address of the name
            return self._exchange(routes[-1], body, headers)
        except httpx.TimeoutException as exc:
            reason = f"timed out after {self._timeout:g} s"
            raise DeliveryFailed(notification.channel, notification.id, reason) from exc
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise DeliveryFailed(notification.channel, notification.id, reason) from exc

    def _exchange(self, route: _Route, body: bytes, headers: dict[str, str]) -> int:
        request = self._client.build_request(
            "POST",
            route.url,
            content=body,
            headers={**headers, **route.headers},
            extensions=route.extensions,
            timeout=self._httpx.Timeout(self._timeout),
        )
        # Streamed and never read: a hostile receiver cannot make us buffer its body.
        response = self._client.send(request, stream=True, follow_redirects=False)
        response.close()
        return response.status_code

    def _judge(self, notification: Notification, status: int) -> None:
        if 200 <= status < 300:
            return
        if status == 410:
            raise EndpointGone(notification.channel, self._target.shown)
        if 300 <= status < 400:
            reason = f"answered {status}, a redirect; redirects are never followed"
        else:
            reason = f"answered HTTP {status}"
        raise DeliveryFailed(notification.channel, notification.id, reason)

    def close(self) -> None:
        """Close the HTTP client if this notifier created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> WebhookNotifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
