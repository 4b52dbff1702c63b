"""The HTTP front door (the ``server`` extra): Open311 GeoReport v2, a JSON API and a
dispatcher console, over one engine.

>>> from closedloop.adapters.http import create_app, Open311Config   # doctest: +SKIP

``create_app(engine, open311=Open311Config(...), actor_from_request=..., api_keys=...)``
gives an ASGI application a host runs alone (``closedloop serve``) or mounts in its
own. See docs/http.md.
"""

from __future__ import annotations

from closedloop.adapters.http.app import create_app
from closedloop.adapters.http.config import (
    ConsoleActor,
    ConsoleConfig,
    Open311Config,
    anonymous_reporter,
    pseudonymous_reporter,
)
from closedloop.errors import (
    BodyTooLarge,
    NotPermitted,
    Open311Refusal,
    StaleVersion,
    Unauthenticated,
)

__all__ = [
    "BodyTooLarge",
    "ConsoleActor",
    "ConsoleConfig",
    "NotPermitted",
    "Open311Config",
    "Open311Refusal",
    "StaleVersion",
    "Unauthenticated",
    "anonymous_reporter",
    "create_app",
    "pseudonymous_reporter",
]
