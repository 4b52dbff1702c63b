"""Who a request is, and what the front door refuses before the engine sees it.

The host answers who a request is (``actor_from_request``); the console's demo sign-in
is the only other source, and only for the actors the host configured. Its refusals
(:class:`~closedloop.errors.Unauthenticated`,
:class:`~closedloop.errors.BodyTooLarge`) are in the one error tree with their HTTP
status, so they reach clients as the engine's own errors do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from closedloop.engine.model import Actor
from closedloop.errors import BodyTooLarge, Unauthenticated

ActorFromRequest = Callable[[Any], Actor | None]
"""The host's answer to who sends a request (a Starlette ``Request``); ``None`` when
nobody is signed in."""

SESSION_COOKIE = "closedloop_actor"
"""The cookie the console's demo sign-in keeps the chosen actor's id in."""

MAX_BODY = 64 * 1024
"""The largest request body accepted, in bytes; larger ones are answered 413."""


class Identities:
    """Resolves the actor of a request: the host's callable, else a demo session."""

    def __init__(
        self, actor_from_request: ActorFromRequest | None, demo: Mapping[str, Actor]
    ) -> None:
        self._host = actor_from_request
        self._demo = dict(demo)

    def of(self, request: Any) -> Actor | None:
        """The actor, or ``None`` when the request names nobody."""
        if self._host is not None:
            actor = self._host(request)
            if actor is not None:
                return actor
        chosen = request.cookies.get(SESSION_COOKIE)
        return self._demo.get(chosen) if chosen else None

    def required(self, request: Any) -> Actor:
        """The actor, or :class:`Unauthenticated`."""
        actor = self.of(request)
        if actor is None:
            raise Unauthenticated(f"{request.method} {request.url.path}")
        return actor

    def demo(self, actor_id: str) -> Actor | None:
        """The configured demo actor with this id."""
        return self._demo.get(actor_id)


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Asgi = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
Refuse = Callable[[dict[str, Any], BodyTooLarge], Asgi]


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is answered 413 before it is read
    whole, by its ``Content-Length`` or, streamed, as soon as it passes the limit."""

    def __init__(self, app: Asgi, *, limit: int, refuse: Refuse) -> None:
        self._app = app
        self._limit = limit
        self._refuse = refuse

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._limit:
            await self._refuse(scope, BodyTooLarge(self._limit))(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if len(body) > self._limit:
                await self._refuse(scope, BodyTooLarge(self._limit))(scope, receive, send)
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self._app(scope, replay, send)
