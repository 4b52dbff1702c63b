"""The dispatcher console: server-rendered pages with plain forms, under ``/console``.

Sign in as a configured demo actor (or through the host's ``actor_from_request``); an
inbox per actor, most urgent first, with red and yellow lights; a case page with the
masked report, the clock, the history and one form per allowed trigger, generated
from the trigger's payload schema; the supervision board. Every page works without
JavaScript. Labels come in Chinese or English from :mod:`.messages`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from closedloop.adapters.http.api import allowed_triggers, fire
from closedloop.adapters.http.config import ConsoleConfig
from closedloop.adapters.http.guards import SESSION_COOKIE, Identities
from closedloop.adapters.http.messages import LANGUAGES, translator
from closedloop.engine.model import Actor
from closedloop.engine.service import Engine
from closedloop.errors import ClosedLoopError, NotPermitted
from closedloop.metrics import supervision_board

LANGUAGE_COOKIE = "closedloop_lang"

_WHOLE = re.compile(r"-?[0-9]{1,18}")
"""A whole number as a form field holds it (ASCII digits: ``²`` is a digit to Python)."""

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _language(request: Request, default: str) -> str:
    chosen = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    return chosen if chosen in LANGUAGES else default


def page(
    request: Request, name: str, status: int = 200, *, default: str = "zh", **context: Any
) -> HTMLResponse:
    """The template ``name`` rendered in the request's language."""
    language = _language(request, default)
    other = LANGUAGES[1 - LANGUAGES.index(language)]
    switch = request.url.include_query_params(lang=other)  # the same page, other language
    html = _TEMPLATES.get_template(name).render(
        t=translator(language),
        lang=language,
        other=other,
        switch=f"{switch.path}?{switch.query}",
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, samesite="lax", httponly=True)
    return response


def error_page(request: Request, error: ClosedLoopError) -> Response:
    """A refusal as a page; a request from nobody goes to the sign-in page."""
    if error.status == 401:
        return RedirectResponse("/console/", status_code=303)
    return page(request, "error.html", error.status, error=error, actor=None)


async def _form(request: Request) -> dict[str, str]:
    """The submitted form, its line breaks back to LF.

    A browser sends every line break of a text area as CRLF (the HTML form submission
    rules), and the engine refuses a carriage return in text, so the console turns CRLF
    and a lone CR back into the LF that was typed.
    """
    return {
        k: str(v).replace("\r\n", "\n").replace("\r", "\n")
        for k, v in (await request.form()).items()
    }


def _payload(schema: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The trigger's payload from a form, each value converted as its schema says."""
    payload: dict[str, Any] = {}
    for name, spec in schema.get("properties", {}).items():
        shape = next((s for s in spec.get("anyOf", [spec]) if s.get("type") != "null"), spec)
        text = form.get(name, "").strip()
        kind = shape.get("type")
        if kind == "boolean":
            if name in form:
                payload[name] = text in ("on", "true", "1")
        elif not text:
            continue
        elif kind == "integer":
            payload[name] = (
                int(text) if _WHOLE.fullmatch(text) else text
            )  # else the engine names it
        elif kind == "number":
            payload[name] = _number(text)
        elif kind == "array":
            payload[name] = [part.strip() for part in text.split(",") if part.strip()]
        else:
            payload[name] = text
    return payload


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # the engine names the field


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The inputs of a trigger's form: name, kind, choices, required."""
    required = set(schema.get("required", []))
    fields = []
    for name, spec in schema.get("properties", {}).items():
        shape = next((s for s in spec.get("anyOf", [spec]) if s.get("type") != "null"), spec)
        kind = shape.get("type")
        if kind == "array" and shape.get("items", {}).get("type") == "object":
            continue  # media references are uploaded by the host's app, not typed in
        widget = (
            "select"
            if "enum" in shape
            else "checkbox"
            if kind == "boolean"
            else "number"
            if kind in ("integer", "number")
            else "textarea"
            if shape.get("maxLength", 0) > 200
            else "text"
        )
        fields.append(
            {
                "name": name,
                "widget": widget,
                "choices": shape.get("enum", []),
                "required": name in required,
                "default": shape.get("default"),
            }
        )
    return fields


def console_router(engine: Engine, identities: Identities, config: ConsoleConfig) -> APIRouter:
    """The console's pages over ``engine``."""
    router = APIRouter(prefix="/console", include_in_schema=False)
    watchers = {r.name for r in engine.workflow.roles if r.kind == "global" and r.sees_all}
    lang = config.language

    def base(actor: Actor | None) -> dict[str, Any]:
        return {
            "actor": actor,
            "title": config.title,
            "watcher": actor is not None and bool(watchers & actor.roles),
            "default": lang,
        }

    @router.get("/")
    def sign_in_page(request: Request) -> Response:
        actor = identities.of(request)
        return page(request, "sign_in.html", choices=config.actors, **base(actor))

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        chosen = identities.demo(str(form.get("actor", "")))
        if chosen is None:
            return RedirectResponse("/console/", status_code=303)
        response = RedirectResponse("/console/inbox", status_code=303)
        response.set_cookie(SESSION_COOKIE, chosen.id, samesite="lax", httponly=True)
        return response

    @router.post("/sign-out")
    def sign_out() -> Response:
        response = RedirectResponse("/console/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @router.get("/inbox")
    def inbox(request: Request, after: str | None = None) -> Response:
        actor = identities.required(request)
        found = engine.inbox(actor, after=after, limit=50)
        return page(request, "inbox.html", page=found, **base(actor))

    @router.get("/cases/{case_id}")
    def case_page(request: Request, case_id: str) -> Response:
        actor = identities.required(request)
        return _case_page(request, engine, case_id, actor, base(actor))

    @router.post("/cases/{case_id}/fire/{trigger}")
    async def fire_form(request: Request, case_id: str, trigger: str) -> Response:
        actor = identities.required(request)
        form = await _form(request)
        schema = engine.workflow.payload_schema(trigger)
        version = form.pop("version", "")
        try:
            fire(
                engine,
                case_id,
                trigger,
                actor,
                _payload(schema, form),
                if_match=f'"{version}"' if version else None,
                idempotency_key=form.get("idempotency_key") or None,
            )
        except ClosedLoopError as error:
            if error.status in (401, 404):
                raise
            return _case_page(request, engine, case_id, actor, base(actor), error=error)
        return RedirectResponse(f"/console/cases/{case_id}", status_code=303)

    @router.get("/report")
    def report_page(request: Request) -> Response:
        actor = identities.required(request)
        return page(request, "report.html", **base(actor))

    @router.post("/report")
    async def report(request: Request) -> Response:
        actor = identities.required(request)
        form = {k: v.strip() for k, v in (await _form(request)).items()}
        location = {k: form[k] for k in ("address", "area") if form.get(k)}
        try:
            case = engine.report(
                actor,
                description=form.get("description", ""),
                location=location or None,
                channel="web",
            )
        except ClosedLoopError as error:
            if error.status in (401, 404):
                raise
            # The form again, with what was typed and why it was refused: nothing is lost.
            typed = {k: form.get(k, "") for k in ("description", "address", "area")}
            context = base(actor)
            return page(request, "report.html", error.status, error=error, typed=typed, **context)
        return RedirectResponse(f"/console/cases/{case.id}", status_code=303)

    @router.get("/board")
    def board(request: Request) -> Response:
        actor = identities.required(request)
        if not watchers & actor.roles:
            raise NotPermitted(actor.id, "a role that sees every case")
        shown = supervision_board(engine.store, as_of=engine.now())
        widest = max((row.open for row in shown.rows), default=0) or 1
        return page(request, "board.html", board=shown, widest=widest, **base(actor))

    return router


def _case_page(
    request: Request,
    engine: Engine,
    case_id: str,
    actor: Actor,
    context: dict[str, Any],
    error: ClosedLoopError | None = None,
) -> Response:
    case = engine.get(case_id, viewer=actor)
    forms = [
        {
            "name": allowed.name,
            "description": allowed.description,
            "fields": _fields(allowed.payload_schema),
        }
        for allowed in allowed_triggers(engine, case_id, actor)
    ]
    history = engine.history(case_id, viewer=actor)
    status = 200 if error is None else error.status
    return page(
        request,
        "case.html",
        status,
        case=case,
        forms=forms,
        history=history,
        error=error,
        **context,
    )
