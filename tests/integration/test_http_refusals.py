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
KEY = "key-of-the-city-app"
CITIZEN = {"X-Actor": "citizen-7"}
DISPATCHER = {"X-Actor": "disp-1", "X-Roles": "dispatcher"}
CATEGORIES = CategoryCatalog.from_dict(
    {"categories": [{"code": "03", "name": "道路交通"}, {"code": "03.01", "name": "路灯"}]}
)


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
    with serving(host.app) as base, httpx.Client(base_url=base, timeout=ANSWERS_WITHIN) as client:
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


def test_if_match_compares_strongly_and_takes_a_list(http: Any) -> None:
    case_id = report(http)
    path = f"/api/cases/{case_id}/triggers/classify"
    for refused in ('W/"1"', '"0", W/"1"', '"1" "2"'):
        answer = http.post(
            path, headers={**DISPATCHER, "If-Match": refused}, json={"category": "01"}
        )
        assert (answer.status_code, answer.json()["current"]) == (412, 1)
    passed = http.post(
        path, headers={**DISPATCHER, "If-Match": '"0", "1"'}, json={"category": "01"}
    )
    assert (passed.status_code, passed.headers["etag"]) == (200, '"2"')


def test_if_none_match_naming_the_current_version_is_not_modified(http: Any) -> None:
    case_id = report(http)
    path = f"/api/cases/{case_id}"
    for tags in ('"1"', 'W/"1"', '"7", "1"', "*"):
        same = http.get(path, headers={**DISPATCHER, "If-None-Match": tags})
        assert (same.status_code, same.headers["etag"], same.content) == (304, '"1"', b"")
    other = http.get(path, headers={**DISPATCHER, "If-None-Match": '"0"'})
    assert (other.status_code, other.json()["case"]["version"]) == (200, 1)
    http.post(f"{path}/triggers/classify", headers=DISPATCHER, json={"category": "01"})
    changed = http.get(path, headers={**DISPATCHER, "If-None-Match": '"1"'})
    assert (changed.status_code, changed.headers["etag"]) == (200, '"2"')


# -- Open311 ---------------------------------------------------------------------------

O311 = "/open311/v2"


def post311(http: Any, **fields: str) -> Any:
    form = {"api_key": KEY, "service_code": "03.01", "address_string": "1 Elm St", **fields}
    return http.post(f"{O311}/requests.json", data=form)


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("requests", {"page_size": "²"}, "page_size"),
        ("requests", {"page": "²"}, "page"),
        ("requests", {"page": "9" * 5000}, "page"),
        ("requests", {"end_date": "0001-01-02T00:00:00Z"}, "end_date"),
        ("requests", {"start_date": "9999-12-31T00:00:00Z"}, "start_date"),
        ("requests", {"start_date": "9999-12-31T23:00:00-05:00"}, "start_date"),
        ("requests", {"start_date": "20260301T000000Z"}, "start_date"),
        ("requests", {"start_date": "2026-03-01T00:00:00-0500"}, "start_date"),
        ("requests", {"start_date": "2026-03-01T00:00:00.1234567Z"}, "start_date"),
        (
            "servicerequestupdates",
            {"start_date": "9999-12-31T23:00:00Z", "end_date": "9999-12-31T23:59:59.999999Z"},
            "start_date",
        ),
        ("servicerequestupdates", {"end_date": "2026-03-02"}, "end_date"),
    ],
)
def test_a_query_open311_cannot_read_gets_the_spec_error_list(
    http: Any, path: str, params: dict[str, str], code: str
) -> None:
    for fmt in ("json", "xml"):
        answer = http.get(f"{O311}/{path}.{fmt}", params=params)
        assert answer.status_code == 400
        if fmt == "json":
            assert [e["code"] for e in answer.json()] == [code]
        else:
            assert f"<code>{code}</code>" in answer.text


def test_w3c_dates_in_every_form_the_spec_allows_are_read(http: Any, host: Host) -> None:
    case_id = post311(http).json()[0]["service_request_id"]
    for start in (
        "2026-03-02T00:59Z",
        "2026-03-02T08:59+08:00",
        "2026-03-02T00:59:00.5Z",
        "2026-03-02T08:59:00+08:00",
        "2026-03-02T08:59:00 08:00",  # a "+" sent unencoded
    ):
        answer = http.get(f"{O311}/requests.json", params={"start_date": start})
        assert answer.status_code == 200, start
        assert case_id in {r["service_request_id"] for r in answer.json()}


def test_updates_are_filtered_by_request_id() -> None:
    own = Host()
    with serving(own.app) as base, httpx.Client(base_url=base, timeout=ANSWERS_WITHIN) as http:
        first = post311(http).json()[0]["service_request_id"]
        own.clock.advance(minutes=1)
        second = post311(http).json()[0]["service_request_id"]
        window = {"start_date": "2026-03-02T00:00:00Z"}
        both = http.get(f"{O311}/servicerequestupdates.json", params=window).json()
        assert [u["service_request_id"] for u in both] == [first, second]
        one = http.get(
            f"{O311}/servicerequestupdates.json",
            params={**window, "service_request_id": f"{second},nope"},
        ).json()
        assert [u["service_request_id"] for u in one] == [second]


def test_a_post_that_is_no_form_is_told_what_the_spec_takes(http: Any, host: Host) -> None:
    before = len(host.engine.store.case_ids())
    as_json = http.post(
        f"{O311}/requests.json",
        json={"api_key": KEY, "service_code": "03.01", "address_string": "1 Elm St"},
    )
    assert as_json.status_code == 400
    [error] = as_json.json()
    assert error["code"] == "body"
    assert "application/x-www-form-urlencoded" in error["description"]
    assert "application/json" in error["description"]
    in_url = http.post(
        f"{O311}/requests.json", params={"api_key": KEY}, data={"service_code": "03.01"}
    )
    assert in_url.status_code == 403
    assert "not of the URL" in in_url.json()[0]["description"]
    garbled = http.post(
        f"{O311}/requests.xml",
        content=f"api_key={KEY}&service_code=03.01&address_string=%FF%FE".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert garbled.status_code == 400
    assert "<code>body</code>" in garbled.text
    raw = http.post(
        f"{O311}/requests.json",
        content=b"api_key=" + KEY.encode() + b"&service_code=03.01&address_string=\xff",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert raw.status_code == 400
    assert len(host.engine.store.case_ids()) == before


def test_the_openapi_document_describes_the_open311_fields(http: Any) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    post = paths["/open311/v2/requests.{fmt}"]["post"]
    form = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert {"api_key", "service_code", "lat", "long", "description"} <= set(form["properties"])
    listed = {p["name"] for p in paths["/open311/v2/requests.{fmt}"]["get"]["parameters"]}
    assert {"service_code", "start_date", "end_date", "status", "page", "page_size"} <= listed
    updates = paths["/open311/v2/servicerequestupdates.{fmt}"]["get"]["parameters"]
    assert {"service_request_id", "start_date", "end_date"} <= {p["name"] for p in updates}


# -- configuration ---------------------------------------------------------------------


def test_a_configuration_no_request_could_be_served_with_is_refused_when_built() -> None:
    from closedloop.errors import DefinitionError

    engine = Engine(workflows.standard(), store=InMemoryStore())
    with pytest.raises(DefinitionError, match="language must be one of zh, en, not 'fr'"):
        ConsoleConfig(language="fr")
    with pytest.raises(DefinitionError, match="offers 'demo-1' twice"):
        ConsoleConfig(
            actors=[ConsoleActor(Actor("demo-1"), "a"), ConsoleActor(Actor("demo-1"), "b")]
        )
    with pytest.raises(DefinitionError, match="categories must be a CategoryCatalog"):
        Open311Config(categories="examples/district/categories.yaml")  # type: ignore[arg-type]
    misspelt = Open311Config(status_notes={"nosuch": "x"})
    with pytest.raises(DefinitionError, match="'nosuch', no state of the workflow") as refused:
        create_app(engine, open311=misspelt)
    assert "reported, classified" in str(refused.value)
    for limit in (-1, 0):
        with pytest.raises(DefinitionError, match="max_body must be a number of bytes from 1"):
            create_app(engine, max_body=limit)


def test_a_console_integer_field_given_a_non_ascii_digit_is_the_form_s_error() -> None:
    from closedloop.engine.definition import Workflow
    from closedloop.engine.loading import parse_yaml

    text = workflows.standard_yaml().replace(
        "      reason: {type: text}\n\n# Who is told what.",
        "      reason: {type: text}\n      days: {type: int}\n\n# Who is told what.",
    )
    assert "days: {type: int}" in text
    engine = Engine(Workflow.from_dict(parse_yaml(text)), store=InMemoryStore())
    app = create_app(engine, actor_from_request=from_headers)
    with serving(app) as base, httpx.Client(base_url=base, timeout=ANSWERS_WITHIN) as http:
        case_id = report(http)
        refused = http.post(
            f"/console/cases/{case_id}/fire/cancel?lang=en",
            headers=CITIZEN,
            data={"version": "1", "days": "²"},
        )
        assert refused.status_code == 422
        assert 'class="error"' in refused.text
        assert "days" in refused.text
        done = http.post(
            f"/console/cases/{case_id}/fire/cancel",
            headers=CITIZEN,
            data={"version": "1", "days": "3"},
            follow_redirects=False,
        )
        assert done.status_code == 303
    assert engine.history(case_id)[-1].payload["days"] == 3


# -- what a reader notices --------------------------------------------------------------


def test_a_chinese_name_is_kept_family_name_first(http: Any, host: Host) -> None:
    names = [("华", "李", "李华"), ("Hua", "Li", "Hua Li"), ("", "李", "李")]
    for first, last, shown in names:
        case_id = post311(http, first_name=first, last_name=last).json()[0]["service_request_id"]
        view = http.get(f"/api/cases/{case_id}", headers=DISPATCHER).json()["case"]
        assert view["contact"]["name"] == shown


def test_the_language_link_keeps_the_page_s_other_parameters(http: Any) -> None:
    page = http.get("/console/inbox?after=abc&lang=en", headers=DISPATCHER)
    assert 'href="/console/inbox?after=abc&amp;lang=zh"' in page.text
