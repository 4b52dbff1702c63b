"""The JSON API for consoles and apps, under ``/api``.

Every route needs an actor (``actor_from_request``, or the console's demo sign-in) and
reads through the engine, so a viewer gets only the cases :meth:`Engine.get` would
show them, masked the same way. A case's ``version`` is its ``ETag``; a trigger sent
with ``If-Match`` naming another version is answered 412, and one that loses a race
after the check 409. Errors are ``application/problem+json`` (RFC 9457).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from closedloop.adapters.http.guards import Identities
from closedloop.engine.model import Actor, AuditEvent, Case, printable
from closedloop.engine.service import Engine
from closedloop.errors import (
    ConcurrentModification,
    IdempotencyConflict,
    NotPermitted,
    StaleVersion,
    ValidationError,
)
from closedloop.metrics import SupervisionBoard, supervision_board


class CasePageBody(BaseModel):
    """One page of cases; pass ``next_cursor`` back as ``after`` for the next one."""

    model_config = ConfigDict(frozen=True)
    cases: list[Case]
    next_cursor: str | None


class AllowedTrigger(BaseModel):
    """A trigger the viewer may fire on the case now, with its payload's JSON Schema."""

    model_config = ConfigDict(frozen=True)
    name: str
    description: str
    schema_ref: str
    payload_schema: dict[str, Any]


class CaseView(BaseModel):
    """A case as the viewer may see it, and what they may do with it now."""

    model_config = ConfigDict(frozen=True)
    case: Case
    allowed: list[AllowedTrigger]


class FacetCount(BaseModel):
    """How many cases have one value (``null``: none)."""

    model_config = ConfigDict(frozen=True)
    value: str | None
    count: int


class Facets(BaseModel):
    """The counts of the found cases per value of ``by``."""

    model_config = ConfigDict(frozen=True)
    by: str
    counts: list[FacetCount]


class Verification(BaseModel):
    """What checking a case's audit trail found."""

    model_config = ConfigDict(frozen=True)
    case_id: str
    ok: bool
    events: int
    problems: list[str]


class NewReport(BaseModel):
    """A report, as a citizen's app sends it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    description: str
    location: dict[str, Any] | None = None
    category: str | None = None
    channel: str = "app"
    contact: dict[str, str] | None = None


def schema_name(trigger: str) -> str:
    """The OpenAPI component name of a trigger's payload (``dispatch`` -> ``DispatchPayload``)."""
    return "".join(part.capitalize() for part in trigger.split("_")) + "Payload"


def payload_components(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every trigger's payload schema, by component name."""
    components = {}
    for transition in engine.workflow.transitions:
        schema = dict(engine.workflow.payload_schema(transition.name))
        schema.pop("$schema", None)
        schema.pop("$id", None)
        components[schema_name(transition.name)] = schema
    return components


_VERSION_TAG = re.compile(r'"([1-9][0-9]{0,17})"')
"""An entity tag that names a version (``"3"``)."""

_TAG_LIST = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')
"""One entity tag of a list (RFC 9110 ``#entity-tag``), weak or strong."""


def entity_tags(header: str) -> list[tuple[bool, str]] | None:
    """The tags of an ``If-Match`` or ``If-None-Match`` list as (weak, tag), or ``None``
    when the header is no list of entity tags."""
    text = header.strip()
    tags, at = [], 0
    while at < len(text):
        found = _TAG_LIST.match(text, at)
        if found is None or found.end() == at:
            return None
        tags.append((found.group(1) is not None, found.group(2)))
        at = found.end()
    return tags or None


def _matching(if_match: str, current: int) -> tuple[bool, int | None]:
    """Whether ``If-Match`` passes at version ``current`` (a strong tag of the list is
    its tag: RFC 9110's strong comparison, so a weak tag never matches), and the
    version a retry may name (the list's first strong version tag)."""
    tags = entity_tags(if_match) or []
    strong = [tag for weak, tag in tags if not weak]
    if f'"{current}"' in strong:
        return True, current
    named = [found for tag in strong if (found := _VERSION_TAG.fullmatch(tag))]
    return False, int(named[0].group(1)) if named else None


def not_modified(if_none_match: str | None, case: Case) -> bool:
    """Whether ``If-None-Match`` names the case's current version (``*``, or any tag
    of the list by weak comparison): a GET answers 304."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag == etag(case) for _, tag in entity_tags(if_none_match) or [])


def etag(case: Case) -> str:
    """The case's version as an entity tag."""
    return f'"{case.version}"'


def _criteria(**given: Any) -> dict[str, Any]:
    return {name: value for name, value in given.items() if value is not None}


_FIND_CRITERIA = ("state", "area", "category", "lead_unit", "warning_level", "text")
"""The criteria ``GET /api/cases`` takes."""


def _only_parameters(request: Request, *known: str) -> None:
    """Refuse a query parameter the route does not take: a misspelt criterion
    (``?stat=closed``) would otherwise be ignored and select every case.

    Raises:
        ValidationError: each unknown parameter named, with the route's parameters.
    """
    allowed = ", ".join(sorted(known))
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        raise ValidationError(
            [
                (name, f"is not a parameter of this route; parameters: {allowed}")
                for name in unknown
            ],
            subject="query",
        )


def api_router(engine: Engine, identities: Identities) -> APIRouter:
    """The JSON API over ``engine``."""
    router = APIRouter(prefix="/api", tags=["cases"])
    workflow = engine.workflow
    watchers = {r.name for r in workflow.roles if r.kind == "global" and r.sees_all}

    def who(request: Request) -> Actor:
        return identities.required(request)

    @router.get("/inbox", response_model=CasePageBody, summary="Cases waiting on me")
    def inbox(
        request: Request, after: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> CasePageBody:
        actor = who(request)
        _only_parameters(request, "after", "limit")
        page = engine.inbox(actor, after=after, limit=limit)
        return CasePageBody(cases=list(page.cases), next_cursor=page.next_cursor)

    @router.get("/cases", response_model=CasePageBody, summary="Find cases")
    def find(
        request: Request,
        state: str | None = None,
        area: str | None = None,
        category: str | None = None,
        lead_unit: str | None = None,
        warning_level: str | None = None,
        text: str | None = None,
        order: str = "oldest",
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> CasePageBody:
        actor = who(request)
        _only_parameters(request, *_FIND_CRITERIA, "order", "after", "limit")
        given = _criteria(
            state=state,
            area=area,
            category=category,
            lead_unit=lead_unit,
            warning_level=warning_level,
            text=text,
        )
        page = engine.find(actor, order=order, after=after, limit=limit, **given)
        return CasePageBody(cases=list(page.cases), next_cursor=page.next_cursor)

    @router.get("/facets", response_model=Facets, summary="Count cases per value")
    def facets(
        request: Request,
        by: str = "state",
        state: str | None = None,
        area: str | None = None,
        category: str | None = None,
    ) -> Facets:
        actor = who(request)
        _only_parameters(request, "by", "state", "area", "category")
        given = _criteria(state=state, area=area, category=category)
        counts = engine.facets(actor, by=by, **given)
        rows = [FacetCount(value=v, count=n) for v, n in sorted(counts.items(), key=str)]
        return Facets(by=by, counts=rows)

    @router.post("/reports", response_model=Case, status_code=201, summary="Report a case")
    def report(
        response: Response,
        body: NewReport,
        idempotency_key: Annotated[str | None, Header()] = None,
        reporter: Actor = Depends(who),  # noqa: B008 - resolved before the body is checked
    ) -> Case:
        fields = body.model_dump(exclude_none=True)
        with sent_key(idempotency_key):
            key = scoped_key(reporter, idempotency_key)
            case = engine.report(reporter, idempotency_key=key, **fields)
        response.headers["ETag"] = etag(case)
        return case

    @router.get(
        "/cases/{case_id}",
        response_model=CaseView,
        summary="A case, and what I may do",
        description="The case and the triggers I may fire now; its version is the ETag,"
        " and If-None-Match naming that version is answered 304 with no body.",
    )
    def show(
        case_id: str,
        request: Request,
        response: Response,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Any:
        actor = who(request)
        case = engine.get(case_id, viewer=actor)
        if not_modified(if_none_match, case):
            return Response(status_code=304, headers={"ETag": etag(case)})
        response.headers["ETag"] = etag(case)
        return CaseView(case=case, allowed=allowed_triggers(engine, case_id, actor))

    @router.get("/cases/{case_id}/history", response_model=list[AuditEvent], summary="History")
    def history(case_id: str, request: Request) -> list[AuditEvent]:
        return engine.history(case_id, viewer=who(request))

    @router.get("/cases/{case_id}/verify", response_model=Verification, summary="Check the trail")
    def verify(case_id: str, request: Request) -> Verification:
        engine.get(case_id, viewer=who(request))
        found = engine.verify(case_id)
        return Verification(
            case_id=found.case_id, ok=found.ok, events=found.events, problems=list(found.problems)
        )

    @router.get("/board", response_model=SupervisionBoard, summary="The supervision board")
    def board(request: Request) -> SupervisionBoard:
        actor = who(request)
        if not watchers & actor.roles:
            raise NotPermitted(actor.id, "a role that sees every case")
        return supervision_board(engine.store, as_of=engine.now())

    for transition in workflow.transitions:
        _trigger_route(router, engine, transition.name, transition.description, who)
    _undeclared_trigger_route(router, engine, who)  # after the declared ones: they match first
    return router


def allowed_triggers(engine: Engine, case_id: str, actor: Actor) -> list[AllowedTrigger]:
    """The triggers ``actor`` may fire on the case now, with their schemas."""
    by_name = {t.name: t for t in engine.workflow.transitions}
    return [
        AllowedTrigger(
            name=name,
            description=by_name[name].description,
            schema_ref=f"#/components/schemas/{schema_name(name)}",
            payload_schema=engine.workflow.payload_schema(name),
        )
        for name in engine.allowed(case_id, actor)
    ]


def fire(
    engine: Engine,
    case_id: str,
    trigger: str,
    actor: Actor,
    payload: dict[str, Any],
    *,
    if_match: str | None,
    idempotency_key: str | None,
) -> Case:
    """Fire ``trigger`` as ``actor``; ``If-Match`` must name the current version.

    A retry with the ``Idempotency-Key`` and ``If-Match`` of a command that already
    moved the case on gives that command's first result, not 412. The trigger's name
    and the payload's keys are checked first: a key that is not a field of the
    trigger (``by``, ``idempotency_key``) is refused, never taken for an argument.
    """
    engine.check_payload_keys(trigger, payload)  # a key "by" is no argument of trigger
    expected = None
    if if_match is not None and if_match.strip() != "*":
        current = engine.get(case_id, viewer=actor).version
        passes, sent = _matching(if_match, current)
        if not passes:
            if idempotency_key is None or sent is None:
                raise StaleVersion(case_id, if_match, current)
            try:
                return engine.trigger(
                    case_id,
                    trigger,
                    by=actor,
                    expected_version=sent,
                    idempotency_key=idempotency_key,
                    **payload,
                )
            except ConcurrentModification:
                raise StaleVersion(case_id, if_match, current) from None
        expected = current
    return engine.trigger(
        case_id,
        trigger,
        by=actor,
        expected_version=expected,
        idempotency_key=idempotency_key,
        **payload,
    )


def _trigger_route(
    router: APIRouter, engine: Engine, trigger: str, description: str, who: Any
) -> None:
    body = {
        "required": False,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name(trigger)}"}}
        },
    }

    @router.post(
        f"/cases/{{case_id}}/triggers/{trigger}",
        response_model=Case,
        summary=f"Fire {trigger}",
        description=description or f"Fire the trigger {trigger} on the case.",
        operation_id=f"trigger_{trigger}",
        openapi_extra={"requestBody": body},
    )
    async def fire_route(
        case_id: str,
        request: Request,
        response: Response,
        if_match: Annotated[str | None, Header()] = None,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Case:
        return await fired(
            engine, who, case_id, trigger, request, response, if_match, idempotency_key
        )


def _undeclared_trigger_route(router: APIRouter, engine: Engine, who: Any) -> None:
    """A route for the trigger names the workflow does not declare: the engine refuses
    each with its own error (422, listing the triggers it declares), not a route miss."""

    @router.post(
        "/cases/{case_id}/triggers/{trigger}", response_model=Case, include_in_schema=False
    )
    async def undeclared_route(
        case_id: str,
        trigger: str,
        request: Request,
        response: Response,
        if_match: Annotated[str | None, Header()] = None,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Case:
        return await fired(
            engine, who, case_id, trigger, request, response, if_match, idempotency_key
        )


async def fired(
    engine: Engine,
    who: Any,
    case_id: str,
    trigger: str,
    request: Request,
    response: Response,
    if_match: str | None,
    idempotency_key: str | None,
) -> Case:
    """Fire ``trigger`` with the request's JSON body as its payload, as :func:`fire` does."""
    actor = who(request)
    raw = await request.body()
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ValidationError([("<body>", "is not JSON")], subject="payload") from None
    except RecursionError:  # arrays or objects nested thousands deep: no payload is
        raise ValidationError(
            [("<body>", "is nested too deeply to be a payload")], subject="payload"
        ) from None
    if not isinstance(payload, dict):
        raise ValidationError([("<body>", "must be a JSON object")], subject="payload")
    with sent_key(idempotency_key):
        case = await run_in_threadpool(
            fire,
            engine,
            case_id,
            trigger,
            actor,
            payload,
            if_match=if_match,
            idempotency_key=scoped_key(actor, idempotency_key),
        )
    response.headers["ETag"] = etag(case)
    return case


SCOPED_KEY = "api:"
"""The prefix of the idempotency keys the JSON API keeps (see :func:`scoped_key`)."""


def scoped_key(actor: Actor, key: str | None) -> str | None:
    """The idempotency key the engine keeps for the ``Idempotency-Key`` ``key`` that
    ``actor`` sent: ``api:`` and the SHA-256 of the actor's id and the key. Each actor
    has keys of their own: another actor's same key is another key (it neither returns
    their result nor is refused as theirs), and no key a client sends reaches the keys
    the engine keeps for others, such as the Open311 tokens.

    Raises:
        ValidationError: ``key`` is not 1 to 200 printable characters.
    """
    if key is None:
        return None
    if not printable(key, 200):
        raise ValidationError(
            [("Idempotency-Key", "must be 1 to 200 printable characters of valid Unicode")],
            subject="command",
        )
    named = json.dumps([actor.id, key], ensure_ascii=False).encode()
    return SCOPED_KEY + hashlib.sha256(named).hexdigest()


@contextmanager
def sent_key(key: str | None) -> Iterator[None]:
    """Name the key the client sent, not the key kept, when it was used for another
    command."""
    try:
        yield
    except IdempotencyConflict as conflict:
        if key is None:
            raise
        raise IdempotencyConflict(key) from conflict
