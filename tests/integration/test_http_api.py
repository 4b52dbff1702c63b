"""The JSON API and the security of every route, over real HTTP (uvicorn, httpx)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from closedloop import Actor, Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.testing import ManualClock
from tests.http_server import ANSWERS_WITHIN, from_headers, serving

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from closedloop.adapters.http import (  # noqa: E402
    ConsoleActor,
    ConsoleConfig,
    Open311Config,
    create_app,
)

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
CITIZEN = {"X-Actor": "citizen-7"}
OTHER_CITIZEN = {"X-Actor": "citizen-8"}
DISPATCHER = {"X-Actor": "disp-1", "X-Roles": "dispatcher"}
WATER = {"X-Actor": "water-1", "X-Units": "water"}
LIMIT = 4096


class Host:
    def __init__(self) -> None:
        self.clock = ManualClock(START)
        self.engine = Engine(workflows.standard(), store=InMemoryStore(), clock=self.clock)
        self.app = create_app(
            self.engine,
            open311=Open311Config(public=False),
            actor_from_request=from_headers,
            api_keys={"k": "app"},
            console=ConsoleConfig(actors=[ConsoleActor(Actor("demo-1"), "demo")]),
            max_body=LIMIT,
        )


@pytest.fixture(scope="module")
def host() -> Host:
    return Host()


@pytest.fixture(scope="module")
def http(host: Host) -> Iterator[Any]:
    with serving(host.app) as base, httpx.Client(base_url=base, timeout=ANSWERS_WITHIN) as client:
        yield client


@pytest.fixture
def fresh() -> Iterator[tuple[Any, Host]]:
    """A host and client of its own, for a test whose figures count every case there is."""
    own = Host()
    with serving(own.app) as base, httpx.Client(base_url=base, timeout=ANSWERS_WITHIN) as client:
        yield client, own


def report(http: Any, who: dict[str, str] = CITIZEN, text: str = "burst pipe") -> str:
    answer = http.post(
        "/api/reports",
        headers=who,
        json={
            "description": text,
            "location": {"area": "D1"},
            "contact": {"name": "李雷", "phone": "13812345678"},
        },
    )
    assert answer.status_code == 201
    return str(answer.json()["id"])


def test_a_case_runs_its_loop_through_the_api(fresh: tuple[Any, Host]) -> None:
    http, host = fresh  # the inbox, the facets and the board count every case there is
    case_id = report(http)
    inbox = http.get("/api/inbox", headers=DISPATCHER).json()
    assert [c["id"] for c in inbox["cases"]] == [case_id]
    assert inbox["cases"][0]["contact"]["phone"] == "13812345678"  # a dispatcher's right
    view = http.get(f"/api/cases/{case_id}", headers=DISPATCHER)
    assert view.headers["etag"] == '"1"'
    allowed = {t["name"]: t for t in view.json()["allowed"]}
    assert set(allowed) == {"classify", "reject", "merge", "answer"}
    assert allowed["classify"]["payload_schema"]["required"] == ["category"]
    assert allowed["classify"]["schema_ref"] == "#/components/schemas/ClassifyPayload"
    fired = http.post(
        f"/api/cases/{case_id}/triggers/classify",
        headers={**DISPATCHER, "If-Match": '"1"', "Idempotency-Key": "c-1"},
        json={"category": "01.01"},
    )
    assert fired.status_code == 200
    assert (fired.json()["state"], fired.headers["etag"]) == ("classified", '"2"')
    again = http.post(
        f"/api/cases/{case_id}/triggers/classify",
        headers={**DISPATCHER, "Idempotency-Key": "c-1"},
        json={"category": "01.01"},
    )
    assert (again.status_code, again.json()["version"]) == (200, 2)
    http.post(f"/api/cases/{case_id}/triggers/dispatch", headers=DISPATCHER, json={"unit": "water"})
    water_inbox = http.get("/api/inbox", headers=WATER).json()["cases"]
    assert [c["id"] for c in water_inbox] == [case_id]
    history = http.get(f"/api/cases/{case_id}/history", headers=WATER).json()
    assert [e["trigger"] for e in history] == ["report", "classify", "dispatch"]
    assert http.get(f"/api/cases/{case_id}/verify", headers=WATER).json() == {
        "case_id": case_id,
        "ok": True,
        "events": 3,
        "problems": [],
    }
    facets = http.get("/api/facets", headers=DISPATCHER, params={"by": "state"}).json()
    assert {"value": "assigned", "count": 1} in facets["counts"]
    found = http.get("/api/cases", headers=DISPATCHER, params={"text": "burst"}).json()
    assert case_id in [c["id"] for c in found["cases"]]
    host.clock.advance(timedelta(minutes=1))
    board = http.get("/api/board", headers=DISPATCHER).json()
    assert board["total"]["open"] >= 1
    assert http.get("/api/board", headers=WATER).status_code == 403


def test_a_refused_trigger_is_a_problem_document(http: Any) -> None:
    case_id = report(http)
    refused = http.post(
        f"/api/cases/{case_id}/triggers/classify",
        headers=DISPATCHER,
        json={"category": "not a code!"},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "category"
    wrong = http.post(f"/api/cases/{case_id}/triggers/accept", headers=WATER, json={})
    assert wrong.status_code == 404  # the water unit may not see an unassigned case


@pytest.mark.parametrize("tag", ['"9"', '"0"', 'W/"7"', "abc", '"1 "'])
def test_a_forged_if_match_is_a_failed_precondition(http: Any, tag: str) -> None:
    case_id = report(http)
    answer = http.post(
        f"/api/cases/{case_id}/triggers/classify",
        headers={**DISPATCHER, "If-Match": tag},
        json={"category": "01"},
    )
    assert answer.status_code == 412
    assert answer.json()["current"] == 1
    assert http.get(f"/api/cases/{case_id}", headers=DISPATCHER).json()["case"]["version"] == 1


def test_a_retry_with_its_if_match_and_key_gives_the_first_result(http: Any) -> None:
    case_id = report(http)
    sent = {**DISPATCHER, "If-Match": '"1"', "Idempotency-Key": f"retry-{case_id}"}
    path = f"/api/cases/{case_id}/triggers/classify"
    first = http.post(path, headers=sent, json={"category": "01"})
    again = http.post(path, headers=sent, json={"category": "01"})
    assert (again.status_code, again.headers["etag"]) == (200, '"2"')
    assert again.json() == first.json()
    other = http.post(
        path, headers={**sent, "Idempotency-Key": f"other-{case_id}"}, json={"category": "01"}
    )
    assert (other.status_code, other.json()["current"]) == (412, 2)


def test_an_unknown_route_or_method_is_a_problem_document(http: Any) -> None:
    unknown = http.post("/api/cases/c-1/fly", headers=DISPATCHER, json={})
    assert (unknown.status_code, unknown.headers["content-type"]) == (
        404,
        "application/problem+json",
    )
    assert unknown.json()["title"] == "Not Found"


@pytest.mark.parametrize("key", ["by", "expected_version", "idempotency_key", "case_id"])
def test_a_body_key_named_like_an_argument_of_trigger_is_not_a_field(http: Any, key: str) -> None:
    case_id = report(http)
    http.post(
        f"/api/cases/{case_id}/triggers/classify", headers=DISPATCHER, json={"category": "01"}
    )
    refused = http.post(
        f"/api/cases/{case_id}/triggers/dispatch",
        headers={**DISPATCHER, "If-Match": '"2"'},
        json={"unit": "water", key: 1},
    )
    assert (refused.status_code, refused.headers["content-type"]) == (
        422,
        "application/problem+json",
    )
    assert refused.json()["errors"] == [
        {"field": key, "message": "is not a field of 'dispatch'; fields: co_units, reason, unit"}
    ]
    shown = http.get(f"/api/cases/{case_id}", headers=DISPATCHER).json()["case"]
    assert (shown["state"], shown["version"]) == ("classified", 2)


def test_a_misspelt_query_is_refused_not_answered_with_an_empty_page(http: Any) -> None:
    report(http)
    for path, params, field, start in (
        ("/api/cases", {"state": "clsoed"}, "state", "unknown state 'clsoed'; known: "),
        ("/api/facets", {"state": "clsoed"}, "state", "unknown state 'clsoed'; known: "),
        ("/api/cases", {"warning_level": "orange"}, "warning_level", "unknown warning level"),
        ("/api/cases", {"stat": "closed"}, "stat", "is not a parameter of this route; "),
        ("/api/facets", {"stat": "closed"}, "stat", "is not a parameter of this route; "),
        ("/api/inbox", {"limt": "5"}, "limt", "is not a parameter of this route; "),
    ):
        refused = http.get(path, headers=DISPATCHER, params=params)
        assert (refused.status_code, refused.headers["content-type"]) == (
            422,
            "application/problem+json",
        ), (path, params)
        [error] = refused.json()["errors"]
        assert error["field"] == field
        assert error["message"].startswith(start), error
    [found] = http.get("/api/cases", headers=DISPATCHER, params={"stat": "x"}).json()["errors"]
    assert found["message"] == (
        "is not a parameter of this route; parameters: after, area, category, lead_unit, "
        "limit, order, state, text, warning_level"
    )
    closed = http.get("/api/cases", headers=DISPATCHER, params={"state": "closed"})
    assert (closed.status_code, closed.json()["cases"]) == (200, [])


def test_a_trigger_the_workflow_does_not_declare_is_refused_with_the_list(http: Any) -> None:
    case_id = report(http)
    for headers in (DISPATCHER, {**DISPATCHER, "If-Match": '"1"'}):
        unknown = http.post(
            f"/api/cases/{case_id}/triggers/dispach", headers=headers, json={"unit": "water"}
        )
        assert (unknown.status_code, unknown.headers["content-type"]) == (
            422,
            "application/problem+json",
        )
        [error] = unknown.json()["errors"]
        assert error["field"] == "name"
        assert error["message"].startswith(
            "'dispach' is not a trigger of workflow 'standard'; triggers: accept, answer, "
        )
        assert ", dispatch, " in error["message"]
    shown = http.get(f"/api/cases/{case_id}", headers=DISPATCHER).json()["case"]
    assert (shown["state"], shown["version"]) == ("reported", 1)
    assert http.post(f"/api/cases/{case_id}/triggers/dispach", json={}).status_code == 401
    wrong = http.delete("/api/inbox", headers=DISPATCHER)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET")
    assert wrong.json()["status"] == 405


def test_a_stale_console_form_is_refused_in_the_console_s_words(http: Any) -> None:
    case_id = report(http)
    http.post(
        f"/api/cases/{case_id}/triggers/classify", headers=DISPATCHER, json={"category": "01"}
    )
    stale = http.post(
        f"/console/cases/{case_id}/fire/cancel?lang=en",
        headers=CITIZEN,
        data={"version": "1", "reason": "fixed itself"},
    )
    assert stale.status_code == 412
    assert "the case changed after this page was loaded" in stale.text
    assert "If-Match" not in stale.text


def test_a_refused_console_report_shows_why_and_keeps_what_was_typed(http: Any, host: Host) -> None:
    before = len(host.engine.store.case_ids())
    typed = {"description": "水管爆裂 <b>", "address": "9 Pine Rd", "area": "bad area!"}
    refused = http.post("/console/report?lang=en", headers=CITIZEN, data=typed)
    assert refused.status_code == 422
    assert "&#39;bad area!&#39; is not a code" in refused.text
    assert ">水管爆裂 &lt;b&gt;</textarea>" in refused.text
    assert 'value="9 Pine Rd"' in refused.text
    assert len(host.engine.store.case_ids()) == before


def test_console_text_areas_keep_their_line_breaks_as_the_browser_sends_them(
    http: Any, host: Host
) -> None:
    # A browser sends a text area's line breaks as CRLF; what was typed arrives as LF.
    sent = http.post(
        "/console/report?lang=en",
        headers=CITIZEN,
        data={"description": "路灯不亮\r\n第二行\rthird line", "area": "D1"},
    )
    assert sent.status_code == 303
    case_id = sent.headers["location"].rpartition("/")[2]
    case = host.engine.get(case_id, viewer=Actor("citizen-7"))
    assert case.description == "路灯不亮\n第二行\nthird line"
    cancelled = http.post(
        f"/console/cases/{case_id}/fire/cancel?lang=en",
        headers=CITIZEN,
        data={"version": "1", "reason": "fixed itself\r\nthanks"},
    )
    assert cancelled.status_code == 303
    last = host.engine.history(case_id)[-1]
    assert (last.trigger, last.payload) == ("cancel", {"reason": "fixed itself\nthanks"})


def test_a_stale_if_match_after_another_change_is_refused(http: Any) -> None:
    case_id = report(http)
    first = http.post(
        f"/api/cases/{case_id}/triggers/classify",
        headers={**DISPATCHER, "If-Match": '"1"'},
        json={"category": "01"},
    )
    assert first.status_code == 200
    second = http.post(
        f"/api/cases/{case_id}/triggers/reject",
        headers={**DISPATCHER, "If-Match": '"1"'},
        json={"reason": "dup"},
    )
    assert second.status_code in (409, 412)


def test_a_body_over_the_limit_is_refused_with_413(http: Any) -> None:
    big = "x" * (LIMIT + 1)
    api = http.post("/api/reports", headers=CITIZEN, json={"description": big})
    assert api.status_code == 413
    assert api.headers["content-type"] == "application/problem+json"
    open311 = http.post("/open311/v2/requests.xml", data={"api_key": "k", "description": big})
    assert open311.status_code == 413
    assert "<code>body</code>" in open311.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(LIMIT // 1000 + 2):
            yield b"y" * 1000

    streamed = http.post(
        "/api/reports", headers={**CITIZEN, "Content-Type": "application/json"}, content=chunks()
    )
    assert streamed.status_code == 413


def test_a_reporter_sees_no_other_reporters_case_through_any_route(http: Any, host: Host) -> None:
    mine = report(http, OTHER_CITIZEN, "my own")
    theirs = report(http, CITIZEN, "someone else's")
    for path in (
        f"/api/cases/{theirs}",
        f"/api/cases/{theirs}/history",
        f"/api/cases/{theirs}/verify",
        f"/open311/v2/requests/{theirs}.json",
        f"/console/cases/{theirs}",
    ):
        assert http.get(path, headers=OTHER_CITIZEN).status_code == 404, path
    fired = http.post(f"/api/cases/{theirs}/triggers/cancel", headers=OTHER_CITIZEN, json={})
    assert fired.status_code == 404
    console = http.post(f"/console/cases/{theirs}/fire/cancel", headers=OTHER_CITIZEN)
    assert console.status_code == 404
    listed = http.get("/api/cases", headers=OTHER_CITIZEN).json()["cases"]
    assert [c["id"] for c in listed] == [mine]
    by_id = http.get(
        "/open311/v2/requests.json",
        headers=OTHER_CITIZEN,
        params={"service_request_id": f"{theirs},{mine}"},
    ).json()
    assert [r["service_request_id"] for r in by_id] == [mine]
    everything = http.get("/open311/v2/requests.json", headers=OTHER_CITIZEN).json()
    assert [r["service_request_id"] for r in everything] == [mine]
    updates = http.get("/open311/v2/servicerequestupdates.json", headers=OTHER_CITIZEN).json()
    assert {u["service_request_id"] for u in updates} == {mine}
    counts = http.get("/api/facets", headers=OTHER_CITIZEN).json()["counts"]
    assert counts == [{"value": "reported", "count": 1}]
    assert http.get("/api/inbox", headers=OTHER_CITIZEN).json()["cases"] == []
    page = http.get(f"/api/cases/{mine}", headers=OTHER_CITIZEN).json()
    assert page["case"]["contact"]["phone"] == "13812345678"  # their own
    assert host.engine.get(theirs, viewer=Actor("citizen-7")).description == "someone else's"


def _routes(host: Host) -> list[tuple[str, str]]:
    """Every route of the three routers create_app includes."""
    from closedloop.adapters.http.api import api_router
    from closedloop.adapters.http.console import console_router
    from closedloop.adapters.http.guards import Identities
    from closedloop.adapters.http.open311 import Open311Service
    from closedloop.adapters.http.open311_routes import open311_router

    nobody = Identities(None, {})
    routers = (
        api_router(host.engine, nobody),
        console_router(host.engine, nobody, ConsoleConfig()),
        open311_router(Open311Service(host.engine, Open311Config()), nobody, {}, public=False),
    )
    found = []
    for route in (route for router in routers for route in router.routes):
        path = getattr(route, "path", "")
        if path.startswith(("/api", "/console", "/open311")) and path != "/console/":
            for method in sorted(getattr(route, "methods", ()) - {"HEAD"}):
                found.append((method, path))
    return found


def test_every_route_refuses_a_request_from_nobody(http: Any, host: Host) -> None:
    routes = _routes(host)
    assert len(routes) == 8 + 30 + 1 + 8 + 7  # the api, its triggers and the rest, console, open311
    for method, template in routes:
        path = (
            template.replace("{case_id}", "c-1")
            .replace("{fmt}", "json")
            .replace("{code}", "01")
            .replace("{token}", "t")
            .replace("{request_id}", "c-1")
            .replace("{trigger}", "classify")
        )
        answer = http.request(method, path, follow_redirects=False)
        if template.startswith("/api"):
            assert answer.status_code == 401, path
            assert answer.json()["title"] == "Not signed in"
        elif template.startswith("/console"):
            assert (answer.status_code, answer.headers.get("location")) in ((303, "/console/"),), (
                path
            )
        elif template.startswith(("/open311/v2/services", "/open311/v2/tokens")):
            # the service list is public, and a token only stands for a request id
            assert answer.status_code == (200 if template.endswith("services.{fmt}") else 404)
        else:
            assert answer.status_code == 403, path


def test_the_openapi_document_names_every_payload_schema(http: Any, host: Host) -> None:
    document = http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for transition in host.engine.workflow.transitions:
        name = "".join(p.capitalize() for p in transition.name.split("_")) + "Payload"
        assert schemas[name] == {
            k: v
            for k, v in host.engine.workflow.payload_schema(transition.name).items()
            if k not in ("$schema", "$id")
        }
        operation = document["paths"][f"/api/cases/{{case_id}}/triggers/{transition.name}"]
        body = operation["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{name}"}
    for path, operations in document["paths"].items():
        if not path.startswith("/api"):
            continue
        for operation in operations.values():
            for answer in operation["responses"].values():
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                shown = schema.get("items", schema)
                assert "$ref" in shown, (path, schema)
