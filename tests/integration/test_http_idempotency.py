"""Idempotency keys over the JSON API, over real HTTP (uvicorn on loopback, httpx): each
actor has keys of their own, and no key a client sends reaches an Open311 token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from closedloop import Actor, Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.duties import CategoryCatalog
from tests.http_server import ANSWERS_WITHIN, from_headers, serving
from tests.integration.test_privacy import with_retention

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from closedloop.adapters.http import Open311Config, create_app  # noqa: E402

KEY = "key-of-the-city-app"
ALICE = {"X-Actor": "citizen-alice"}
BOB = {"X-Actor": "citizen-bob"}
DISPATCHER = {"X-Actor": "disp-1", "X-Roles": "dispatcher"}
CATEGORIES = CategoryCatalog.from_dict({"categories": [{"code": "03", "name": "路灯"}]})
BODY = {"description": "Lamp out on Elm St", "contact": {"phone": "13812345678"}}


@pytest.fixture
def served() -> Iterator[tuple[Any, Engine]]:
    engine = Engine(workflows.standard(), store=InMemoryStore())
    config = Open311Config(categories=CATEGORIES, asynchronous=True)
    app = create_app(
        engine, open311=config, actor_from_request=from_headers, api_keys={KEY: "city-app"}
    )
    with serving(app) as base, httpx.Client(base_url=base, timeout=ANSWERS_WITHIN) as http:
        yield http, engine


def reported(http: Any, who: dict[str, str], key: str, body: dict[str, Any] = BODY) -> Any:
    return http.post("/api/reports", headers={**who, "Idempotency-Key": key}, json=body)


def test_two_actors_sending_one_key_get_a_case_each(served: tuple[Any, Engine]) -> None:
    http, engine = served
    alices = reported(http, ALICE, "r-1")
    bobs = reported(http, BOB, "r-1")
    assert (alices.status_code, bobs.status_code) == (201, 201)
    assert alices.json()["id"] != bobs.json()["id"]
    assert (alices.json()["reporter_id"], bobs.json()["reporter_id"]) == (
        "citizen-alice",
        "citizen-bob",
    )
    again = reported(http, ALICE, "r-1")
    assert (again.status_code, again.json()["id"]) == (201, alices.json()["id"])
    other = reported(http, BOB, "r-1", {**BODY, "description": "Another lamp"})
    assert other.status_code == 422
    assert other.json()["detail"] == (
        "idempotency key 'r-1' was already used for a different command or payload; "
        "use a new key for a new command"
    )
    assert engine.count(Actor("sup", roles={"supervisor"})) == 2


def test_a_trigger_key_is_the_actors_own(served: tuple[Any, Engine]) -> None:
    http, _ = served
    case_id = reported(http, ALICE, "r-1").json()["id"]
    path = f"/api/cases/{case_id}/triggers/classify"
    sent = {**DISPATCHER, "Idempotency-Key": "t-1"}
    first = http.post(path, headers=sent, json={"category": "03"})
    assert (first.status_code, first.json()["version"]) == (200, 2)
    again = http.post(path, headers=sent, json={"category": "03"})
    assert (again.status_code, again.json()["version"]) == (200, 2)
    stranger = http.post(path, headers={**ALICE, "Idempotency-Key": "t-1"}, json={"category": "03"})
    # her own refusal (the case is classified already), not the dispatcher's key
    assert stranger.status_code == 409
    assert "idempotency" not in stranger.json()["detail"]


def test_a_client_key_never_reaches_an_open311_token(served: tuple[Any, Engine]) -> None:
    http, _ = served
    spoofed = reported(http, ALICE, "open311-token:deadbeef")
    assert spoofed.status_code == 201
    assert http.get("/open311/v2/tokens/deadbeef.json").status_code == 404
    form = {"api_key": KEY, "service_code": "03", "address_string": "Elm St 3"}
    [answer] = http.post("/open311/v2/requests.json", data=form).json()
    token = http.get(f"/open311/v2/tokens/{answer['token']}.json")
    assert token.status_code == 200
    assert token.json()[0]["service_request_id"] != spoofed.json()["id"]


def test_a_key_that_is_not_printable_text_is_refused(served: tuple[Any, Engine]) -> None:
    http, engine = served
    refused = reported(http, ALICE, "k" * 201)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {
            "field": "Idempotency-Key",
            "message": "must be 1 to 200 printable characters of valid Unicode",
        }
    ]
    assert engine.count(Actor("sup", roles={"supervisor"})) == 0


def test_a_token_answers_404_once_its_reporter_is_erased() -> None:
    engine = Engine(with_retention(force_erase=["supervisor"]), store=InMemoryStore())
    config = Open311Config(categories=CATEGORIES, asynchronous=True)
    app = create_app(engine, open311=config, api_keys={KEY: "city-app"})
    form = {"api_key": KEY, "service_code": "03", "address_string": "Elm St 3"}
    with (
        serving(app) as base,
        httpx.Client(base_url=base + "/open311/v2", timeout=ANSWERS_WITHIN) as http,
    ):
        [answer] = http.post("/requests.json", data={**form, "phone": "13812345678"}).json()
        [found] = http.get(f"/tokens/{answer['token']}.json").json()
        case_id = found["service_request_id"]
        supervisor = Actor("sup", roles={"supervisor"})
        reporter = engine.get(case_id, viewer=supervisor).reporter_id
        engine.erase_subject(reporter, by=supervisor, force=True)
        gone = http.get(f"/tokens/{answer['token']}.json")
        assert gone.status_code == 404
        assert gone.json()[0]["code"] == "token"
        assert http.get(f"/requests/{case_id}.json").status_code == 200
