"""The Open311 GeoReport v2 routes, under ``/open311/v2/``: parse, call, render.

Each resource comes as ``.json`` and ``.xml``; a refusal is the spec's error list in
the same format, with the status the spec gives it (403 for the api_key, 404 for what
does not exist, 400 for the rest).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from closedloop.adapters.http.guards import Identities
from closedloop.adapters.http.open311 import Open311Service
from closedloop.adapters.http.open311_format import FORMATS, MEDIA_TYPES, render, render_one
from closedloop.errors import Open311Refusal

PREFIX = "/open311/v2"


def _document(fmt: str, body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=MEDIA_TYPES[fmt])


def refusal_response(fmt: str, refusal: Open311Refusal) -> Response:
    """The spec's error list, in ``fmt`` (JSON when the format itself is unknown)."""
    shown = fmt if fmt in FORMATS else "json"
    return _document(shown, render(shown, "errors", "error", refusal.items()), refusal.http_status)


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Refusal(400, [("format", f"format must be json or xml, not {fmt!r}")])
    return fmt


def _query(request: Request) -> dict[str, str]:
    """The query, repeated parameters joined by commas (the spec allows both)."""
    keys = dict.fromkeys(request.query_params.keys())
    return {key: ",".join(request.query_params.getlist(key)) for key in keys}


async def _form(request: Request) -> dict[str, str]:
    """The POSTed form; ``attribute[code][]`` values joined by commas."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form()
        pairs = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    else:
        text = (await request.body()).decode("utf-8", errors="replace")
        pairs = parse_qsl(text, keep_blank_values=True)
    joined: dict[str, str] = {}
    for key, value in pairs:
        name = key.removesuffix("[]")
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def open311_router(
    service: Open311Service,
    identities: Identities,
    api_keys: Mapping[str, str],
    *,
    public: bool,
) -> APIRouter:
    """The router of every Open311 method over ``service``."""
    router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"])

    def answer(fmt: str, work: Callable[[], Any], root: str, element: str) -> Response:
        try:
            shown = _format(fmt)
            items = work()
        except Open311Refusal as refusal:
            return refusal_response(fmt, refusal)
        if element:
            return _document(shown, render(shown, root, element, items))
        return _document(shown, render_one(shown, root, items))

    def reader(request: Request) -> Any:
        if public:
            return None
        actor = identities.of(request)
        if actor is None:
            raise Open311Refusal(403, [("api_key", "sign in to read requests")])
        return actor

    @router.get("/services.{fmt}", summary="GET Service List")
    def services(fmt: str, jurisdiction_id: str | None = None) -> Response:
        def work() -> Any:
            service.check_jurisdiction(jurisdiction_id)
            return service.services()

        return answer(fmt, work, "services", "service")

    @router.get("/services/{code}.{fmt}", summary="GET Service Definition")
    def definition(code: str, fmt: str, jurisdiction_id: str | None = None) -> Response:
        def work() -> Any:
            service.check_jurisdiction(jurisdiction_id)
            return service.definition(code)

        return answer(fmt, work, "service_definition", "")

    @router.post("/requests.{fmt}", summary="POST Service Request")
    async def create(fmt: str, request: Request) -> Response:
        form = await _form(request)

        def work() -> Any:
            client = _client(api_keys, form.get("api_key", ""))
            service.check_jurisdiction(form.get("jurisdiction_id"))
            return [service.create(client, form)]

        return await run_in_threadpool(answer, fmt, work, "service_requests", "request")

    @router.get("/tokens/{token}.{fmt}", summary="GET service_request_id from a token")
    def token(token: str, fmt: str, jurisdiction_id: str | None = None) -> Response:
        def work() -> Any:
            service.check_jurisdiction(jurisdiction_id)
            return [service.token(token)]

        return answer(fmt, work, "service_requests", "request")

    @router.get("/requests.{fmt}", summary="GET Service Requests")
    def requests(fmt: str, request: Request) -> Response:
        query = _query(request)

        def work() -> Any:
            service.check_jurisdiction(query.get("jurisdiction_id"))
            return service.requests(query, reader(request))

        return answer(fmt, work, "service_requests", "request")

    @router.get("/requests/{request_id}.{fmt}", summary="GET Service Request")
    def one(request_id: str, fmt: str, request: Request) -> Response:
        query = _query(request)

        def work() -> Any:
            service.check_jurisdiction(query.get("jurisdiction_id"))
            return [service.request(request_id, reader(request))]

        return answer(fmt, work, "service_requests", "request")

    @router.get("/servicerequestupdates.{fmt}", summary="GET Service Request Updates")
    def updates(fmt: str, request: Request) -> Response:
        query = _query(request)

        def work() -> Any:
            service.check_jurisdiction(query.get("jurisdiction_id"))
            return service.updates(query, reader(request))

        return answer(fmt, work, "service_request_updates", "request_update")

    return router


def _client(api_keys: Mapping[str, str], given: str) -> str:
    """The client an api_key belongs to; 403 when it is missing or unknown."""
    if not given:
        raise Open311Refusal(403, [("api_key", "api_key was not provided")])
    for key, client in api_keys.items():
        if hmac.compare_digest(key.encode(), given.encode()):
            return client
    raise Open311Refusal(403, [("api_key", "invalid api_key: cannot create the request")])
