"""Signed webhooks, the Standard Webhooks way: signing for senders, verifying for receivers.

Every request :class:`~closedloop.adapters.webhook.WebhookNotifier` sends carries three
headers:

* ``webhook-id`` - the notification's id, the same on every retry (de-duplicate on it);
* ``webhook-timestamp`` - when this attempt was signed, in integer Unix seconds;
* ``webhook-signature`` - ``v1,<base64 HMAC-SHA256>`` of ``"{id}.{timestamp}.{body}"``
  under each active secret, separated by spaces (two during a rotation).

A receiver checks a request with :func:`verify` before trusting anything in it::

    from closedloop.adapters.webhook import verify
    from closedloop.errors import SignatureInvalid

    try:
        verify(request.headers, request.body, secrets=["whsec_..."])
    except SignatureInvalid:
        return 401

Secrets are raw ``bytes`` of at least 24 bytes, or ``whsec_<base64>`` strings such as
:func:`generate_secret` makes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from closedloop.engine.clock import utc
from closedloop.errors import SignatureInvalid, ValidationError

__all__ = [
    "ID_HEADER",
    "MIN_SECRET_BYTES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "HeaderItems",
    "Secret",
    "Secrets",
    "decode_secrets",
    "generate_secret",
    "sign",
    "verify",
]

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
MIN_SECRET_BYTES = 24
"""The shortest secret accepted, as the Standard Webhooks specification asks."""

_PREFIX = "whsec_"
_VERSION = "v1"

Secret = bytes | str
"""Raw key bytes (at least 24), or a ``whsec_<base64>`` string."""
Secrets = Secret | Sequence[Secret]
"""One secret, or every secret active during a rotation."""


class HeaderItems(Protocol):
    """Anything with ``items()`` of name/value pairs: a dict, ``httpx.Headers``,
    ``http.server``'s message, Starlette's or Werkzeug's headers."""

    def items(self) -> Iterable[tuple[str, str]]:
        """The header name/value pairs, a name repeated if sent more than once."""
        ...


def generate_secret() -> str:
    """A new random secret of 32 bytes, as a ``whsec_`` string to give a receiver."""
    return _PREFIX + base64.b64encode(_random.token_bytes(32)).decode("ascii")


def decode_secrets(secrets: Secrets) -> tuple[bytes, ...]:
    """The raw keys of ``secrets``, each checked.

    Raises:
        ValidationError: no secret was given, or one is too short, not ``bytes``, or a
            string that is not ``whsec_`` followed by valid base64.
    """
    given: Sequence[Secret] = [secrets] if isinstance(secrets, bytes | str) else secrets
    problems: list[tuple[str, str]] = []
    keys: list[bytes] = []
    for index, secret in enumerate(given):
        try:
            keys.append(_decode_one(secret))
        except ValueError as exc:
            problems.append((f"secrets[{index}]", str(exc)))
    if not given:
        problems.append(("secrets", "at least one secret is needed"))
    if problems:
        raise ValidationError(problems, subject="webhook secrets")
    return tuple(keys)


def _decode_one(secret: object) -> bytes:
    if isinstance(secret, bytes):
        key = secret
    elif isinstance(secret, str):
        if not secret.startswith(_PREFIX):
            raise ValueError(
                f"a secret given as text must start with {_PREFIX!r} followed by base64; "
                "pass raw keys as bytes"
            )
        try:
            key = base64.b64decode(secret[len(_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"the text after {_PREFIX!r} is not valid base64") from exc
    else:
        raise ValueError(f"a secret is bytes or a {_PREFIX!r} string, not {type(secret).__name__}")
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the key has {len(key)} bytes; at least {MIN_SECRET_BYTES} are needed")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Secrets) -> str:
    """The ``webhook-signature`` header value for one request.

    Args:
        msg_id: The ``webhook-id``: the notification's id, stable across retries.
        timestamp: The ``webhook-timestamp`` of this attempt, in Unix seconds.
        body: The exact request body bytes.
        secrets: One secret, or several during a rotation (one signature each).

    Returns:
        ``v1,<base64>`` per secret, separated by single spaces.

    Raises:
        ValidationError: a secret is not acceptable (see :func:`decode_secrets`).
    """
    return " ".join(
        f"{_VERSION},{base64.b64encode(_digest(key, msg_id, timestamp, body)).decode('ascii')}"
        for key in decode_secrets(secrets)
    )


def verify(
    headers: HeaderItems,
    body: bytes | str,
    secrets: Secrets,
    *,
    tolerance: timedelta = timedelta(seconds=300),
    now: datetime | None = None,
) -> None:
    """Check that a received webhook was signed with one of ``secrets``, recently.

    Pass the raw body exactly as received, before any JSON parsing.

    Args:
        headers: The request headers; names are matched case-insensitively.
        body: The raw request body (text is taken as UTF-8).
        secrets: The receiver's active secrets; a signature under any one verifies.
        tolerance: How far ``webhook-timestamp`` may lie from ``now``, either way;
            bounds how long a captured request can be replayed.
        now: The current instant (timezone-aware); the system clock by default.

    Raises:
        SignatureInvalid: a header is missing or malformed, the timestamp lies
            outside the tolerance, or no signature matches.
        ValidationError: ``secrets`` is not acceptable (a receiver's configuration bug).
        NaiveDatetime: ``now`` has no time zone.
    """
    keys = decode_secrets(secrets)
    values = _header_values(headers)
    msg_id = _single(values, ID_HEADER)
    timestamp = _timestamp(_single(values, TIMESTAMP_HEADER))
    _check_fresh(timestamp, tolerance, datetime.now(UTC) if now is None else utc(now, "now"))
    presented = _presented(values.get(SIGNATURE_HEADER, []))
    raw = body.encode("utf-8") if isinstance(body, str) else body
    expected = [_digest(key, msg_id, timestamp, raw) for key in keys]
    # Compare every pair without stopping early, so timing tells nothing about which.
    matched = False
    for candidate in presented:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise SignatureInvalid("no signature matches any active secret")


def _header_values(headers: HeaderItems) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        values.setdefault(str(name).lower(), []).append(str(value))
    return values


def _single(values: dict[str, list[str]], name: str) -> str:
    found = {v.strip() for v in values.get(name, [])}
    if not found or found == {""}:
        raise SignatureInvalid(f"the {name} header is missing")
    if len(found) > 1:
        raise SignatureInvalid(f"the {name} header was sent with different values")
    return found.pop()


def _timestamp(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise SignatureInvalid(f"{TIMESTAMP_HEADER} is not integer Unix seconds: {text[:40]!r}")
    return int(text)


def _check_fresh(timestamp: int, tolerance: timedelta, now: datetime) -> None:
    skew = now.timestamp() - timestamp
    if abs(skew) > tolerance.total_seconds():
        when = "old" if skew > 0 else "far in the future"
        raise SignatureInvalid(
            f"{TIMESTAMP_HEADER} is {abs(int(skew))} s {when}; the tolerance is "
            f"{int(tolerance.total_seconds())} s"
        )


def _presented(headers: list[str]) -> list[bytes]:
    """The decoded ``v1`` signatures; other versions and malformed entries are skipped."""
    found: list[bytes] = []
    for entry in " ".join(headers).split():
        version, _, encoded = entry.partition(",")
        if version != _VERSION:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not found:
        raise SignatureInvalid(f"the {SIGNATURE_HEADER} header has no {_VERSION} signature")
    return found
