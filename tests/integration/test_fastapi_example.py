"""examples/fastapi_app.py, driven over HTTP from report to confirmation."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.testing import ManualClock
from tests.http_server import ANSWERS_WITHIN, serving

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

ROOT = Path(__file__).resolve().parents[2]
CITIZEN = {"X-Actor": "citizen-7"}
DISPATCHER = {"X-Actor": "disp-1", "X-Roles": "dispatcher"}
WATER = {"X-Actor": "water-1", "X-Units": "water"}
STRANGER = {"X-Actor": "citizen-8"}


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("fastapi_app", ROOT / "examples/fastapi_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its annotations are resolved by module name
    spec.loader.exec_module(module)
    return module


async def drive(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        body = {
            "description": "井盖缺失 manhole cover missing",
            "location": {"address": "南京路 9 号", "area": "D1.S1.C1.G01"},
            "contact": {"name": "李雷", "phone": "13812345678"},
        }
        made = await http.post("/cases", json=body, headers=CITIZEN)
        assert made.status_code == 201, made.text
        case_id, etag = made.json()["id"], made.headers["ETag"]
        assert etag == '"1"'

        inbox = (await http.get("/inbox", headers=DISPATCHER)).json()
        assert [c["id"] for c in inbox["cases"]] == [case_id]
        assert inbox["next_cursor"] is None

        path = f"/cases/{case_id}"
        stale = {**DISPATCHER, "If-Match": '"7"'}
        refused = await http.post(f"{path}/classify", json={"category": "01.01"}, headers=stale)
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 409

        fresh = {**DISPATCHER, "If-Match": etag}
        step = await http.post(f"{path}/classify", json={"category": "01.01"}, headers=fresh)
        assert step.status_code == 200, step.text
        bad = await http.post(f"{path}/dispatch", json={"unit": "no such"}, headers=DISPATCHER)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "unit"
        sent = await http.post(f"{path}/dispatch", json={"unit": "water"}, headers=DISPATCHER)
        assert sent.headers["ETag"] == '"3"'

        assert [c["id"] for c in (await http.get("/inbox", headers=WATER)).json()["cases"]] == [
            case_id
        ]
        for trigger, payload, who in (
            ("accept", None, WATER),
            ("submit_result", {"result": "cover replaced"}, WATER),
            ("feedback", {"message": "fixed"}, DISPATCHER),
            ("confirm", {"rating": "satisfied"}, CITIZEN),
        ):
            done = await http.post(f"{path}/{trigger}", json=payload, headers=who)
            assert done.status_code == 200, (trigger, done.text)

        shown = await http.get(path, headers=WATER)
        assert shown.json()["state"] == "closed"
        assert shown.json()["contact"]["phone"] == "13812345678"
        assert (await http.get(path, headers=STRANGER)).status_code == 404
        found = await http.get(
            "/cases", params={"text": "井盖", "order": "newest"}, headers=DISPATCHER
        )
        assert [c["id"] for c in found.json()["cases"]] == [case_id]
        trail = (await http.get(f"{path}/history", headers=CITIZEN)).json()
        assert [e["trigger"] for e in trail] == [
            "report", "classify", "dispatch", "accept", "submit_result", "feedback", "confirm"
        ]  # fmt: skip

        spec = (await http.get("/openapi.json")).json()
        body_schema = spec["paths"]["/cases/{case_id}/classify"]["post"]["requestBody"]
        assert body_schema["content"]["application/json"]["schema"]["required"] == ["category"]


def test_the_example_app_runs_the_loop_over_http(tmp_path: Path) -> None:
    example = load_example()
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    engine = Engine(workflows.standard(), store=store, clock=ManualClock())
    try:
        asyncio.run(drive(example.create_app(engine)))
    finally:
        store.close()


@pytest.fixture(scope="module")
def example_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The example app served on loopback, over a SQLite file of its own."""
    store = SQLStore(f"sqlite:///{tmp_path_factory.mktemp('example') / 'cases.db'}")
    app = load_example().create_app(Engine(workflows.standard(), store=store, clock=ManualClock()))
    try:
        with serving(app) as base, httpx.Client(base_url=base, timeout=ANSWERS_WITHIN) as client:
            yield client
    finally:
        store.close()


def reported(http: Any) -> str:
    made = http.post("/cases", json={"description": "burst pipe"}, headers=CITIZEN)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def assert_problem(answer: Any, status: int) -> dict[str, Any]:
    assert (answer.status_code, answer.headers["content-type"]) == (
        status,
        "application/problem+json",
    ), answer.text
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == status
    return problem


def test_the_example_refuses_an_undeclared_trigger_with_the_workflow_s_list(
    example_http: Any,
) -> None:
    case_id = reported(example_http)
    answer = example_http.post(f"/cases/{case_id}/dispach", json={}, headers=DISPATCHER)
    [error] = assert_problem(answer, 422)["errors"]
    assert error["field"] == "name"
    assert error["message"].startswith("'dispach' is not a trigger of workflow 'standard'")
    assert ", classify, " in error["message"]
    assert example_http.get(f"/cases/{case_id}", headers=DISPATCHER).json()["version"] == 1


def test_the_example_answers_a_request_without_its_actor_header_with_a_problem(
    example_http: Any,
) -> None:
    answer = example_http.post("/cases", json={"description": "burst pipe"})
    assert assert_problem(answer, 422)["errors"] == [
        {"field": "header.x-actor", "message": "Field required"}
    ]
    case_id = reported(example_http)
    answer = example_http.post(f"/cases/{case_id}/classify", json=[1], headers=DISPATCHER)
    assert [e["field"] for e in assert_problem(answer, 422)["errors"]] == ["body"]


def test_the_example_refuses_a_body_key_that_is_no_field_of_the_trigger(
    example_http: Any,
) -> None:
    case_id = reported(example_http)
    path = f"/cases/{case_id}"
    example_http.post(f"{path}/classify", json={"category": "01.01"}, headers=DISPATCHER)
    for key in ("idempotency_key", "by", "expected_version"):
        answer = example_http.post(
            f"{path}/dispatch", json={"unit": "water", key: "k1"}, headers=DISPATCHER
        )
        assert assert_problem(answer, 422)["errors"] == [
            {
                "field": key,
                "message": "is not a field of 'dispatch'; fields: co_units, reason, unit",
            }
        ]
    assert example_http.get(path, headers=DISPATCHER).json()["version"] == 2
    assert len(example_http.get(f"{path}/history", headers=DISPATCHER).json()) == 2


def test_the_example_answers_a_post_to_a_route_of_other_methods_with_405(
    example_http: Any,
) -> None:
    case_id = reported(example_http)
    for headers in (DISPATCHER, {}):  # the method is refused before who is asking
        answer = example_http.post(f"/cases/{case_id}/history", json={}, headers=headers)
        assert answer.status_code == 405, answer.text
        assert answer.headers["Allow"] == "GET"
    answer = example_http.put(f"/cases/{case_id}/classify", json={}, headers=DISPATCHER)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert len(example_http.get(f"/cases/{case_id}/history", headers=DISPATCHER).json()) == 1
    answer = example_http.post(f"/cases/{case_id}/dispach", json={}, headers=DISPATCHER)
    assert assert_problem(answer, 422)["errors"][0]["field"] == "name"
