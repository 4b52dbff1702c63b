"""A small host application: closedloop behind FastAPI, a SQLite file, nothing else.

Run it with ``python examples/fastapi_app.py --serve`` (the ``server`` extra), then open
http://127.0.0.1:8000/docs: every trigger is its own route, its body described by the
workflow's JSON Schema. Who is asking comes from three headers here (``X-Actor``,
``X-Roles``, ``X-Units``); a real host takes them from its own login.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Match

from closedloop import Actor, ClosedLoopError, Engine, ValidationError, workflows
from closedloop.adapters.sqlalchemy import SQLStore


class Report(BaseModel):
    """What a citizen reports."""

    description: str
    location: dict[str, Any] | None = None
    channel: str = "app"
    contact: dict[str, str] | None = None


def who(
    x_actor: Annotated[str, Header()],
    x_roles: Annotated[str, Header()] = "",
    x_units: Annotated[str, Header()] = "",
) -> Actor:
    """The actor a request speaks for."""
    return Actor(x_actor, roles=_names(x_roles), units=_names(x_units))


Caller = Annotated[Actor, Depends(who)]


def _names(header: str) -> frozenset[str]:
    return frozenset(part.strip() for part in header.split(",") if part.strip())


def _version(if_match: str | None) -> int | None:
    """The version an ``If-Match: "3"`` header names (the case's ETag)."""
    if if_match is None:
        return None
    tag = if_match.removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ValidationError([("If-Match", 'must be a case version such as "3"')])
    return int(tag)


def _case(response: Response, case: Any) -> dict[str, Any]:
    response.headers["ETag"] = f'"{case.version}"'
    shown: dict[str, Any] = case.model_dump(mode="json")
    return shown


def create_app(engine: Engine) -> FastAPI:
    """The application, over ``engine``."""
    app = FastAPI(title="District hotline", version=engine.workflow.version)

    @app.exception_handler(ClosedLoopError)
    def problem(_request: Request, error: ClosedLoopError) -> JSONResponse:
        return JSONResponse(
            error.to_problem(), status_code=error.status, media_type="application/problem+json"
        )

    @app.exception_handler(RequestValidationError)  # a header missing, a body not an object
    def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
        wrong = [(".".join(map(str, e["loc"])), e["msg"]) for e in error.errors()]
        return problem(request, ValidationError(wrong, subject="request"))

    @app.post("/cases", status_code=201)
    def report(response: Response, caller: Caller, body: Report) -> dict[str, Any]:
        case = engine.report(caller, **body.model_dump(exclude_none=True))
        return _case(response, case)

    @app.get("/inbox")
    def inbox(caller: Caller, after: str | None = None, limit: int = 50) -> dict[str, Any]:
        return engine.inbox(caller, after=after, limit=limit).to_json()

    @app.get("/cases")
    def find(
        caller: Caller,
        state: str | None = None,
        area: str | None = None,
        text: str | None = None,
        order: str = "urgent",
        after: str | None = None,
    ) -> dict[str, Any]:
        page = engine.find(caller, state=state, area=area, text=text, order=order, after=after)
        return page.to_json()

    @app.get("/cases/{case_id}")
    def show(case_id: str, response: Response, caller: Caller) -> dict[str, Any]:
        return _case(response, engine.get(case_id, viewer=caller))

    @app.get("/cases/{case_id}/history")
    def history(case_id: str, caller: Caller) -> list[dict[str, Any]]:
        return [event.model_dump(mode="json") for event in engine.history(case_id, viewer=caller)]

    for transition in engine.workflow.transitions:
        _trigger_route(app, engine, transition.name)

    @app.post("/cases/{case_id}/{name}", include_in_schema=False)
    def undeclared(
        case_id: str, name: str, _: Annotated[None, Depends(_no_other_route)], caller: Caller
    ) -> None:
        engine.trigger(case_id, name, by=caller)  # refused: the workflow declares no such trigger

    return app


def _no_other_route(request: Request) -> None:
    """Answer 405 Method Not Allowed, with the methods it has, for a path that is a
    route of other methods (``POST /cases/{id}/history``): no trigger, though the
    catch-all route of undeclared triggers matches it. Checked before the caller's
    headers, as the router checks a method."""
    allowed = {
        method
        for route in request.app.router.routes
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] is Match.PARTIAL
        for method in route.methods
    }
    if allowed:
        raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})


def _trigger_route(app: FastAPI, engine: Engine, trigger: str) -> None:
    schema = engine.workflow.payload_schema(trigger)
    body = {"content": {"application/json": {"schema": schema}}}

    @app.post(f"/cases/{{case_id}}/{trigger}", openapi_extra={"requestBody": body})
    def fire(
        case_id: str,
        response: Response,
        caller: Caller,
        if_match: Annotated[str | None, Header()] = None,
        payload: Annotated[dict[str, Any] | None, Body()] = None,
    ) -> dict[str, Any]:
        version, fields = _version(if_match), payload or {}
        engine.check_payload_keys(trigger, fields)  # refuses a key such as "by", as no field
        case = engine.trigger(case_id, trigger, by=caller, expected_version=version, **fields)
        return _case(response, case)


if __name__ == "__main__":  # --serve [--port 8000] [--db cases.db]
    import argparse

    parser = argparse.ArgumentParser(description="Serve the example app with uvicorn.")
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--db", default="cases.db", help="SQLite file (made if absent)")
    given = parser.parse_args()
    if not given.serve:
        parser.exit(0, "serve it with: --serve [--port 8000] [--db cases.db]\n")
    import uvicorn

    store = SQLStore(f"sqlite:///{given.db}")
    uvicorn.run(create_app(Engine(workflows.standard(), store=store)), port=given.port)
