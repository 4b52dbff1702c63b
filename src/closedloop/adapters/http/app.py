"""``create_app``: the front door of one engine as an ASGI application.

The composition root of the HTTP adapter: it builds the Open311 service, the JSON API
and the console over one engine and one way of telling who a request is, and turns
every :class:`~closedloop.errors.ClosedLoopError` into ``application/problem+json``
(Open311 routes answer with the spec's error list instead).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from closedloop.adapters.http.api import api_router, payload_components
from closedloop.adapters.http.config import ConsoleConfig, Open311Config
from closedloop.adapters.http.guards import (
    MAX_BODY,
    ActorFromRequest,
    BodyLimit,
    Identities,
)
from closedloop.adapters.http.open311 import Open311Service
from closedloop.adapters.http.open311_routes import PREFIX, open311_router, refusal_response
from closedloop.engine.service import Engine
from closedloop.errors import (
    BodyTooLarge,
    ClosedLoopError,
    DefinitionError,
    Open311Refusal,
    ValidationError,
)

PROBLEM = "application/problem+json"


def problem_response(error: ClosedLoopError) -> JSONResponse:
    """The error as an RFC 9457 problem."""
    return JSONResponse(error.to_problem(), status_code=error.status, media_type=PROBLEM)


def client_of(key: str) -> str:
    """The name of an Open311 client known only by its key: ``key-`` and 12 hex digits
    of the key's SHA-256, a name that can be shown without giving the key away."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def create_app(
    engine: Engine,
    *,
    open311: Open311Config | None = None,
    actor_from_request: ActorFromRequest | None = None,
    api_keys: Mapping[str, str] | Collection[str] = (),
    console: ConsoleConfig | None = None,
    max_body: int = MAX_BODY,
) -> Any:
    """The ASGI application: Open311 under ``/open311/v2``, the JSON API under
    ``/api``, the console under ``/console``, the OpenAPI document at ``/openapi.json``.

    Args:
        engine: The engine every route acts through.
        open311: How Open311 speaks for the jurisdiction (its services, statuses).
        actor_from_request: Who sends a request (given the Starlette ``Request``),
            ``None`` for nobody; the host's login decides, never the adapter.
        api_keys: The Open311 API keys that may POST requests, with the client each
            belongs to (a plain collection names each client by a digest of its key,
            :func:`client_of`, so no key reaches a reporter's id or the audit trail).
        console: The console's demo actors and language; ``None`` serves it with no
            demo sign-in (only ``actor_from_request`` signs people in).
        max_body: The largest request body accepted, in bytes (larger: 413).

    Returns:
        A FastAPI application (a host may mount it in its own ASGI app).

    Raises:
        DefinitionError: ``max_body`` is not a positive number of bytes, or
            ``open311.status_notes`` names a state the workflow does not declare.
    """
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise DefinitionError(f"max_body must be a number of bytes from 1, not {max_body!r}")
    config = open311 or Open311Config()
    pages = console or ConsoleConfig()
    keys = dict(api_keys) if isinstance(api_keys, Mapping) else {k: client_of(k) for k in api_keys}
    identities = Identities(actor_from_request, {c.actor.id: c.actor for c in pages.actors})
    app = FastAPI(
        title=f"closedloop: {engine.workflow.name}",
        version=engine.workflow.version,
        description="Open311 GeoReport v2, the case API and the dispatcher console.",
    )
    service = Open311Service(engine, config)
    app.include_router(open311_router(service, identities, keys, public=config.public))
    app.include_router(api_router(engine, identities))
    _console(app, engine, identities, pages)
    _errors(app)
    _openapi(app, engine)
    app.add_middleware(BodyLimit, limit=max_body, refuse=_too_large)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/console/", status_code=303)

    return app


def _console(app: FastAPI, engine: Engine, identities: Identities, pages: ConsoleConfig) -> None:
    from closedloop.adapters.http.console import console_router

    app.include_router(console_router(engine, identities, pages))


def _too_large(scope: dict[str, Any], error: BodyTooLarge) -> Any:
    if str(scope.get("path", "")).startswith(PREFIX):
        fmt = str(scope["path"]).rpartition(".")[2]
        return refusal_response(fmt, Open311Refusal(413, [("body", str(error))]))
    return problem_response(error)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ClosedLoopError)
    def closedloop_error(request: Request, error: ClosedLoopError) -> Response:
        if request.url.path.startswith("/console"):
            from closedloop.adapters.http.console import error_page

            return error_page(request, error)
        return problem_response(error)

    @app.exception_handler(StarletteHTTPException)
    def routing(request: Request, error: StarletteHTTPException) -> Response:
        """An unknown path or method: the spec's error list under Open311, else a problem."""
        path = request.url.path
        if path.startswith(PREFIX + "/"):
            fmt = path.rpartition(".")[2] if "." in path.rpartition("/")[2] else "json"
            refusal = Open311Refusal(error.status_code, [("path", f"{path}: {error.detail}")])
            answer = refusal_response(fmt, refusal)
        else:
            problem = {
                "type": "about:blank",
                "title": HTTPStatus(error.status_code).phrase,
                "status": error.status_code,
                "detail": f"{request.method} {path}: {error.detail}",
            }
            answer = JSONResponse(problem, status_code=error.status_code, media_type=PROBLEM)
        answer.headers.update(error.headers or {})
        return answer

    @app.exception_handler(RequestValidationError)
    def malformed(request: Request, error: RequestValidationError) -> Response:
        errors = [
            (".".join(str(p) for p in e.get("loc", ())), str(e.get("msg", "")))
            for e in error.errors()
        ]
        return problem_response(ValidationError(errors, subject="request"))


def _openapi(app: FastAPI, engine: Engine) -> None:
    """The OpenAPI document, with every trigger's payload schema as a named component."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                payload_components(engine)
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
