"""What a client's junk gets from the front door, over real HTTP (uvicorn, httpx): the
documented refusal (the spec's error list under Open311, a problem document under
``/api``, a page in the console), never a 500."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from closedloop import Actor, Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.duties import CategoryCatalog
from closedloop.testing import ManualClock
from tests.http_server import serving

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from closedloop.adapters.http import (  # noqa: E402
    ConsoleActor,
    ConsoleConfig,
    Open311Config,
    create_app,
)

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
KEY = "key-of-the-city-app"
CITIZEN = {"X-Actor": "citizen-7"}
DISPATCHER = {"X-Actor": "disp-1", "X-Roles": "dispatcher"}
CATEGORIES = CategoryCatalog.from_dict(
    {"categories": [{"code": "03", "name": "道路交通"}, {"code": "03.01", "name": "路灯"}]}
)


def from_headers(request: Any) -> Actor | None:
    """The test host's login: two headers."""
    who = request.headers.get("x-actor")
    if not who:
        return None
    roles = frozenset(r for r in request.headers.get("x-roles", "").split(",") if r)
    return Actor(who, roles=roles)


class Host:
    def __init__(self) -> None:
        self.clock = ManualClock(START)
        self.engine = Engine(workflows.standard(), store=InMemoryStore(), clock=self.clock)
        self.app = create_app(
            self.engine,
            open311=Open311Config(categories=CATEGORIES),
            actor_from_request=from_headers,
            api_keys={KEY: "city-app"},
            console=ConsoleConfig(actors=[ConsoleActor(Actor("demo-1"), "demo")]),
        )


@pytest.fixture(scope="module")
def host() -> Host:
    return Host()


@pytest.fixture(scope="module")
def http(host: Host) -> Iterator[Any]:
    with serving(host.app) as base, httpx.Client(base_url=base) as client:
        yield client


def report(http: Any, text: str = "burst pipe") -> str:
    answer = http.post("/api/reports", headers=CITIZEN, json={"description": text})
    assert answer.status_code == 201
    return str(answer.json()["id"])


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# -- the JSON API ------------------------------------------------------------------------


def test_a_trigger_body_nested_too_deeply_is_a_refused_payload(http: Any) -> None:
    case_id = report(http)
    for body in ("[" * 20_000 + "]" * 20_000, '{"result":' + "[" * 900 + "]" * 900 + "}"):
        answer = http.post(
            f"/api/cases/{case_id}/triggers/classify",
            headers={**DISPATCHER, "content-type": "application/json"},
            content=body,
        )
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["errors"][0]["field"] in ("<body>", "result", "category")
    shown = http.get(f"/api/cases/{case_id}", headers=DISPATCHER).json()["case"]
    assert (shown["state"], shown["version"]) == ("reported", 1)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,
        '["oldest","9999-12-31T23:59:59.999999-23:59",2]',
        '["oldest","2026-03-02T00:37:45+00:00",99999999999999999999999]',
    ],
)
def test_a_forged_cursor_is_refused_like_a_garbled_one(http: Any, text: str) -> None:
    report(http)
    for path in ("/api/cases", "/api/inbox"):
        order = "urgent" if path == "/api/inbox" else "oldest"
        answer = http.get(
            path, headers=DISPATCHER, params={"after": cursor(text.replace("oldest", order))}
        )
        assert answer.status_code == 422
        assert answer.json()["errors"] == [
            {"field": "after", "message": "is not a cursor returned by this store"}
        ]


@pytest.mark.parametrize("text", ["\x00", "lamp\x07", " \x00 ", ""])
def test_a_search_text_with_nothing_to_search_for_is_refused(http: Any, text: str) -> None:
    report(http, "street lamp out")
    answer = http.get("/api/cases", headers=DISPATCHER, params={"text": text})
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert error["field"] == "text"
    found = http.get("/api/cases", headers=DISPATCHER, params={"text": "lamp"}).json()
    assert {case["description"] for case in found["cases"]} == {"street lamp out"}
