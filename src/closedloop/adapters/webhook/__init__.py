"""Signed webhooks: the :class:`WebhookNotifier` channel and the signing it uses.

* :mod:`~closedloop.adapters.webhook.notifier` - POSTs each notification as signed JSON
  (the ``http`` extra: ``httpx`` is imported when a notifier is made);
* :mod:`~closedloop.adapters.webhook.signing` - the Standard Webhooks signature, with
  :func:`verify` for the systems that receive closedloop's webhooks (standard library
  only);
* :mod:`~closedloop.adapters.webhook.targets` - where a webhook may be sent (no
  internal networks unless the host allows them).
"""

from __future__ import annotations

from closedloop.adapters.webhook.notifier import WebhookNotifier
from closedloop.adapters.webhook.signing import (
    ID_HEADER,
    MIN_SECRET_BYTES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    decode_secrets,
    generate_secret,
    sign,
    verify,
)

__all__ = [
    "ID_HEADER",
    "MIN_SECRET_BYTES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookNotifier",
    "decode_secrets",
    "generate_secret",
    "sign",
    "verify",
]
