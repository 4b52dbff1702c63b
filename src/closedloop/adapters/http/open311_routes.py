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


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
"""The bodies a POST takes: the spec's form fields, URL-encoded or as multipart."""


async def _form(request: Request) -> dict[str, str]:
    """The POSTed form; ``attribute[code][]`` values joined by commas.

    Raises:
        Open311Refusal: the body is no form (JSON, say), or not UTF-8.
    """
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        pairs = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    elif kind in ("", "application/x-www-form-urlencoded"):
        try:
            text = (await request.body()).decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise Open311Refusal(
                400, [("body", "the form is not UTF-8 text, as the spec requires")]
            ) from None
    else:
        raise Open311Refusal(
            400,
            [
                (
                    "body",
                    f"a request is POSTed as a form ({' or '.join(FORM_TYPES)}),"
                    f" as the spec has it, not as {kind}",
                )
            ],
        )
    joined: dict[str, str] = {}
    for key, value in pairs:
        name = key.removesuffix("[]")
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _parameters(*names: str) -> dict[str, Any]:
    """The OpenAPI description of query parameters the route reads itself."""
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in names
        ]
    }


_POST_FIELDS = (
    "api_key",
    "jurisdiction_id",
    "service_code",
    "lat",
    "long",
    "address_string",
    "address_id",
    "attribute[area]",
    "email",
    "device_id",
    "account_id",
    "first_name",
    "last_name",
    "phone",
    "description",
    "media_url",
)
"""The fields of POST requests (docs/http.md)."""

_POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            kind: {
                "schema": {
                    "type": "object",
                    "required": ["api_key", "service_code"],
                    "properties": {name: {"type": "string"} for name in _POST_FIELDS},
                }
            }
            for kind in FORM_TYPES
        },
    }
}

_DATES = ("start_date", "end_date")


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

    @router.post("/requests.{fmt}", summary="POST Service Request", openapi_extra=_POST_BODY)
    async def create(fmt: str, request: Request) -> Response:
        try:
            form = await _form(request)
        except Open311Refusal as refusal:
            return refusal_response(fmt, refusal)
        in_url = "api_key" in request.query_params

        def work() -> Any:
            client = _client(api_keys, form.get("api_key", ""), in_url=in_url)
            service.check_jurisdiction(form.get("jurisdiction_id"))
            return [service.create(client, form)]

        return await run_in_threadpool(answer, fmt, work, "service_requests", "request")

    @router.get("/tokens/{token}.{fmt}", summary="GET service_request_id from a token")
    def token(token: str, fmt: str, jurisdiction_id: str | None = None) -> Response:
        def work() -> Any:
            service.check_jurisdiction(jurisdiction_id)
            return [service.token(token)]

        return answer(fmt, work, "service_requests", "request")

    @router.get(
        "/requests.{fmt}",
        summary="GET Service Requests",
        openapi_extra=_parameters(
            "jurisdiction_id",
            "service_request_id",
            "service_code",
            *_DATES,
            "status",
            "page",
            "page_size",
        ),
    )
    def requests(fmt: str, request: Request) -> Response:
        query = _query(request)

        def work() -> Any:
            service.check_jurisdiction(query.get("jurisdiction_id"))
            return service.requests(query, reader(request))

        return answer(fmt, work, "service_requests", "request")

    @router.get(
        "/requests/{request_id}.{fmt}",
        summary="GET Service Request",
        openapi_extra=_parameters("jurisdiction_id"),
    )
    def one(request_id: str, fmt: str, request: Request) -> Response:
        query = _query(request)

        def work() -> Any:
            service.check_jurisdiction(query.get("jurisdiction_id"))
            return [service.request(request_id, reader(request))]

        return answer(fmt, work, "service_requests", "request")

    @router.get(
        "/servicerequestupdates.{fmt}",
        summary="GET Service Request Updates",
        openapi_extra=_parameters("jurisdiction_id", "service_request_id", *_DATES),
    )
    def updates(fmt: str, request: Request) -> Response:
        query = _query(request)

        def work() -> Any:
            service.check_jurisdiction(query.get("jurisdiction_id"))
            return service.updates(query, reader(request))

        return answer(fmt, work, "service_request_updates", "request_update")

    return router


def _client(api_keys: Mapping[str, str], given: str, *, in_url: bool = False) -> str:
    """The client an api_key belongs to; 403 when it is missing or unknown."""
    if not given and in_url:
        raise Open311Refusal(
            403, [("api_key", "api_key is a field of the POSTed form, not of the URL")]
        )
    if not given:
        raise Open311Refusal(403, [("api_key", "api_key was not provided")])
    for key, client in api_keys.items():
        if hmac.compare_digest(key.encode(), given.encode()):
            return client
    raise Open311Refusal(403, [("api_key", "invalid api_key: cannot create the request")])
