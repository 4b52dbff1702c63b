"""Open311 GeoReport v2 conformance, over real HTTP: uvicorn on loopback, httpx."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event

from closedloop import Actor, Engine, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.engine.duties import CategoryCatalog
from closedloop.testing import ManualClock
from tests.http_server import ANSWERS_WITHIN, serving

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from closedloop.adapters.http import Open311Config, create_app  # noqa: E402
from closedloop.adapters.http.open311 import Open311Service  # noqa: E402

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
KEY = "key-for-the-city-app"
CATEGORIES = CategoryCatalog.from_dict(
    {
        "categories": [
            {"code": "01", "name": "公用设施", "name_en": "Public facilities"},
            {"code": "01.01", "name": "上水井盖", "name_en": "Manhole cover <water & supply>"},
            {"code": "03", "name": "道路交通"},
            {"code": "03.01", "name": "路灯"},
        ]
    }
)
DISPATCHER = Actor("disp-1", roles=frozenset({"dispatcher"}))
ROADS = Actor("roads-1", units=frozenset({"roads"}))
PHOTOS = {"https://media.example.org/p-1.jpg": b"the pothole"}


def fetched(url: str) -> dict[str, str]:
    """The host's media store: the file digested (here from a table, not the network)."""
    return {
        "url": url,
        "content_type": "image/jpeg",
        "sha256": hashlib.sha256(PHOTOS[url]).hexdigest(),
    }


class City:
    def __init__(self, *, asynchronous: bool = False) -> None:
        self.clock = ManualClock(START)
        self.engine = Engine(workflows.standard(), store=InMemoryStore(), clock=self.clock)
        config = Open311Config(
            jurisdiction_id="yunshan.example.gov",
            categories=CATEGORIES,
            asynchronous=asynchronous,
            media=fetched,
        )
        self.app = create_app(self.engine, open311=config, api_keys={KEY: "city-app"})


@pytest.fixture(scope="module")
def city() -> City:
    return City()


@pytest.fixture(scope="module")
def http(city: City) -> Iterator[Any]:
    with (
        serving(city.app) as base,
        httpx.Client(base_url=base + "/open311/v2", timeout=ANSWERS_WITHIN) as client,
    ):
        yield client


def post(http: Any, fmt: str = "json", **fields: str) -> Any:
    form = {
        "api_key": KEY,
        "service_code": "01.01",
        "lat": "30.25",
        "long": "120.16",
        "description": "井盖缺失 near <school> & gate",
        **fields,
    }
    return http.post(f"/requests.{fmt}", data={k: v for k, v in form.items() if v is not None})


def xml(response: Any) -> ET.Element:
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.content)


def test_the_service_list_comes_from_the_catalogue_in_json_and_xml(http: Any) -> None:
    listed = http.get("/services.json")
    assert listed.headers["content-type"] == "application/json; charset=utf-8"
    assert listed.json() == [
        {
            "service_code": "01.01",
            "service_name": "Manhole cover <water & supply>",
            "description": "Manhole cover <water & supply>",
            "metadata": True,
            "type": "realtime",
            "keywords": "Manhole cover <water & supply>, Public facilities",
            "group": "Public facilities",
        },
        {
            "service_code": "03.01",
            "service_name": "路灯",
            "description": "路灯",
            "metadata": True,
            "type": "realtime",
            "keywords": "路灯, 道路交通",
            "group": "道路交通",
        },
    ]
    root = xml(http.get("/services.xml", params={"jurisdiction_id": "yunshan.example.gov"}))
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root.iter("service")] == ["01.01", "03.01"]
    assert root.find("service/service_name").text == "Manhole cover <water & supply>"
    assert b"&lt;water &amp; supply&gt;" in http.get("/services.xml").content


def test_a_service_definition_lists_the_report_fields_as_attributes(http: Any) -> None:
    definition = http.get("/services/01.01.json").json()
    assert definition["service_code"] == "01.01"
    assert [
        (a["code"], a["datatype"], a["required"], a["order"]) for a in definition["attributes"]
    ] == [("area", "string", False, 1)]
    root = xml(http.get("/services/01.01.xml"))
    assert root.tag == "service_definition"
    assert root.findtext("attributes/attribute/code") == "area"
    missing = http.get("/services/99.json")
    assert missing.status_code == 404
    assert missing.json() == [
        {"code": "service_code", "description": "service_code '99' was not found"}
    ]


def test_a_posted_request_comes_back_through_get_without_the_contact(http: Any, city: City) -> None:
    answer = post(
        http,
        email="li.lei@example.org",
        phone="13812345678",
        first_name="雷",
        last_name="李",
        account_id="acct-9",
        media_url="https://media.example.org/p-1.jpg",
        **{"attribute[area]": "D1.S1"},
    )
    assert answer.status_code == 200
    [created] = answer.json()
    case_id = created["service_request_id"]
    assert created == {
        "service_request_id": case_id,
        "service_notice": None,
        "account_id": "acct-9",
    }
    stored = city.engine.get(case_id, viewer=DISPATCHER)
    assert stored.contact is not None
    assert stored.contact.phone == "13812345678"
    assert stored.location.area == "D1.S1"
    assert stored.category == "01.01"
    assert city.engine.history(case_id)[0].payload["media"][0]["url"] == (
        "https://media.example.org/p-1.jpg"
    )
    [shown] = http.get(f"/requests/{case_id}.json").json()
    assert shown["status"] == "open"
    assert shown["status_notes"] == "Received; waiting to be classified."
    assert shown["description"] == "井盖缺失 near <school> & gate"
    assert shown["media_url"] == "https://media.example.org/p-1.jpg"
    assert (shown["lat"], shown["long"]) == (30.25, 120.16)
    assert shown["requested_datetime"] == city.engine.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    root = xml(http.get(f"/requests/{case_id}.xml"))
    assert root.findtext("request/description") == "井盖缺失 near <school> & gate"
    everything = [
        http.get(path).text
        for path in (
            f"/requests/{case_id}.json",
            f"/requests/{case_id}.xml",
            "/requests.json",
            "/requests.xml",
            "/servicerequestupdates.json",
            "/servicerequestupdates.xml",
        )
    ]
    for secret in ("13812345678", "li.lei@example.org", "李", "138****5678"):
        assert not any(secret in text for text in everything)


def test_a_web_client_s_line_breaks_are_kept_as_typed(http: Any, city: City) -> None:
    # A web client's text area sends CRLF; the case keeps the LF that was typed.
    answer = post(http, description="路灯不亮\r\n从昨晚开始\r亮一下就灭")
    assert answer.status_code == 200, answer.text
    [created] = answer.json()
    stored = city.engine.get(created["service_request_id"], viewer=DISPATCHER)
    assert stored.description == "路灯不亮\n从昨晚开始\n亮一下就灭"


def test_requests_are_found_by_id_code_status_and_dates(http: Any, city: City) -> None:
    first = post(http).json()[0]["service_request_id"]
    city.clock.advance(timedelta(hours=1))
    lamp = post(http, service_code="03.01").json()[0]["service_request_id"]
    city.engine.trigger(lamp, "reject", by=DISPATCHER, reason="not ours")
    by_ids = http.get("/requests.json", params={"service_request_id": f"{lamp},{first},nope"})
    assert {r["service_request_id"] for r in by_ids.json()} == {lamp, first}
    lamps = http.get("/requests.json", params={"service_code": "03.01"}).json()
    assert [(r["service_request_id"], r["status"]) for r in lamps] == [(lamp, "closed")]
    closed = http.get("/requests.xml", params={"status": "closed"})
    assert [e.text for e in xml(closed).iter("service_request_id")] == [lamp]
    since = (START + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    later = http.get("/requests.json", params={"start_date": since}).json()
    assert [r["service_request_id"] for r in later] == [lamp]
    window = {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-03-02T00:00:00Z"}
    assert http.get("/requests.json", params=window).json() == []
    page = http.get("/requests.json", params={"page_size": "1", "page": "2"}).json()
    assert len(page) == 1


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"start_date": "2026-03-01"}, 400, "start_date"),
        ({"end_date": "2026-03-01T00:00:00"}, 400, "end_date"),
        ({"start_date": "yesterday"}, 400, "start_date"),
        (
            {"start_date": "2025-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"},
            400,
            "end_date",
        ),
        (
            {"start_date": "2026-03-02T00:00:00Z", "end_date": "2026-03-01T00:00:00Z"},
            400,
            "end_date",
        ),
        ({"page_size": "1001"}, 400, "page_size"),
        ({"service_request_id": ",".join(f"c{i}" for i in range(1001))}, 400, "service_request_id"),
        ({"status": "pending"}, 400, "status"),
        ({"service_code": "99"}, 404, "service_code"),
        ({"jurisdiction_id": "elsewhere.gov"}, 404, "jurisdiction_id"),
    ],
)
def test_a_bad_query_gets_the_spec_error_list(
    http: Any, params: dict[str, str], status: int, code: str
) -> None:
    answer = http.get("/requests.json", params=params)
    assert answer.status_code == status
    assert [e["code"] for e in answer.json()] == [code]
    root = xml(http.get("/requests.xml", params=params))
    assert [e.findtext("code") for e in root.iter("error")] == [code]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"api_key": None}, 403, "api_key"),
        ({"api_key": "forged"}, 403, "api_key"),
        ({"service_code": None}, 400, "service_code"),
        ({"service_code": "99.99"}, 404, "service_code"),
        ({"service_code": "01"}, 404, "service_code"),
        ({"lat": None, "long": None}, 400, "location"),
        ({"long": None}, 400, "long"),
        ({"lat": "north"}, 400, "lat"),
        ({"jurisdiction_id": "elsewhere.gov"}, 404, "jurisdiction_id"),
        ({"email": "not an email"}, 400, "contact.email"),
        ({"description": "x" * 4001}, 400, "description"),
    ],
)
def test_a_bad_post_gets_the_spec_error_list(
    http: Any, fields: dict[str, Any], status: int, code: str
) -> None:
    for fmt in ("json", "xml"):
        answer = post(http, fmt, **fields)
        assert answer.status_code == status
        codes = (
            [e["code"] for e in answer.json()]
            if fmt == "json"
            else [e.findtext("code") for e in xml(answer).iter("error")]
        )
        assert codes == [code]


def test_an_unknown_format_is_a_bad_url(http: Any) -> None:
    answer = http.get("/services.csv")
    assert answer.status_code == 400
    assert answer.json()[0]["code"] == "format"


def test_an_unknown_resource_gets_the_spec_error_list(http: Any) -> None:
    answer = http.get("/service_list.xml")
    assert answer.status_code == 404
    assert [e.findtext("code") for e in xml(answer)] == ["path"]
    assert http.get("/requests").json()[0]["code"] == "path"


def test_updates_follow_the_case_through_the_loop() -> None:
    city = City()  # its own clock: the hours it advances would move the shared city's
    with (
        serving(city.app) as base,
        httpx.Client(base_url=base + "/open311/v2", timeout=ANSWERS_WITHIN) as http,
    ):
        _follow_the_loop(http, city)


def _follow_the_loop(http: Any, city: City) -> None:
    case_id = post(http, address_string="1 Lamp Road").json()[0]["service_request_id"]
    since = city.engine.now()
    engine = city.engine
    city.clock.advance(timedelta(minutes=5))
    engine.trigger(case_id, "classify", by=DISPATCHER, category="03.01")
    engine.trigger(case_id, "dispatch", by=DISPATCHER, unit="roads")
    engine.trigger(case_id, "accept", by=ROADS)
    city.clock.advance(timedelta(hours=3))
    engine.tick()
    engine.trigger(case_id, "submit_result", by=ROADS, result="Lamp replaced")
    window = {"start_date": since.isoformat().replace("+00:00", "Z")}
    updates = [
        u
        for u in http.get("/servicerequestupdates.json", params=window).json()
        if u["service_request_id"] == case_id
    ]
    assert [(u["status"], u["description"]) for u in updates] == [
        ("open", "Received; waiting to be classified."),
        ("open", "Classified; waiting to be assigned to a unit."),
        ("open", "Assigned to a unit; waiting for the unit to take it on."),
        ("open", "Being handled by the responsible unit."),
        ("open", "Handled; the result is being checked."),
    ]
    root = xml(http.get("/servicerequestupdates.xml", params=window))
    assert root.tag == "service_request_updates"
    assert (
        len([u for u in root.iter("request_update") if u.findtext("service_request_id") == case_id])
        == 5
    )
    [shown] = http.get(f"/requests/{case_id}.json").json()
    assert (shown["agency_responsible"], shown["address"]) == ("roads", "1 Lamp Road")


def test_updates_read_only_the_events_of_the_window(tmp_path: Path) -> None:
    # Many cases left alone since long before the window, a few changed in it, one of
    # them again after its end: the feed reads the window's events alone, from the
    # index on the events' instant, of the engine's workflow, in one statement (the
    # public viewer sees every case, so no case is read); never a case's whole trail.
    clock = ManualClock(START - timedelta(days=200))
    database = create_engine(f"sqlite:///{tmp_path / 'city.db'}")
    engine = Engine(workflows.standard(), store=SQLStore(database), clock=clock)
    service = Open311Service(engine, Open311Config(categories=CATEGORIES))

    def report(n: int) -> str:
        return engine.report(Actor(f"citizen-{n}"), description=f"lamp {n}", location="Elm St").id

    old = [report(n) for n in range(40)]
    clock.advance(timedelta(days=200, minutes=10))  # START + 10 minutes: in the window
    for case_id in old[:3]:
        engine.trigger(case_id, "classify", by=DISPATCHER, category="03.01")
    new = report(40)
    clock.advance(timedelta(hours=2))  # after the window's end
    engine.trigger(old[0], "dispatch", by=DISPATCHER, unit="roads")
    report(41)  # reported after the end: never read

    sent: list[str] = []  # the statements it sends
    event.listen(database, "before_cursor_execute", lambda *sending: sent.append(sending[2]))
    window = {"start_date": "2026-03-02T01:00:00Z", "end_date": "2026-03-02T02:00:00Z"}
    updates = service.updates(window, None)
    shown = {(u["service_request_id"], u["description"], u["updated_datetime"]) for u in updates}
    assert len(updates) == 4
    assert shown == {
        *((case_id, "Classified; waiting to be assigned to a unit.", "2026-03-02T01:10:00Z")
          for case_id in old[:3]),
        (new, "Received; waiting to be classified.", "2026-03-02T01:10:00Z"),
    }  # fmt: skip
    assert len(sent) == 1
    assert sent[0].startswith("SELECT closedloop_case_events.")
    # Each event's case is looked up by its key, for its workflow only: no case read.
    joined = "JOIN closedloop_cases ON closedloop_cases.id = closedloop_case_events.case_id"
    assert joined in sent[0]
    # A viewer who sees only some cases: each case in the window read once, to decide.
    sent.clear()
    mine = service.updates(window, Actor("citizen-1"))
    assert [u["service_request_id"] for u in mine] == [old[1]]
    assert len(sent) == 1 + 4
    engine.store.close()
    database.dispose()


def test_an_asynchronous_city_answers_with_a_token() -> None:
    city = City(asynchronous=True)
    with (
        serving(city.app) as base,
        httpx.Client(base_url=base + "/open311/v2", timeout=ANSWERS_WITHIN) as http,
    ):
        assert {s["type"] for s in http.get("/services.json").json()} == {"batch"}
        [answer] = post(http).json()
        assert "service_request_id" not in answer
        [found] = http.get(f"/tokens/{answer['token']}.json").json()
        assert found["token"] == answer["token"]
        assert city.engine.get(found["service_request_id"], viewer=DISPATCHER).category == "01.01"
        assert (
            xml(http.get(f"/tokens/{answer['token']}.xml")).findtext("request/service_request_id")
            == found["service_request_id"]
        )
        assert http.get("/tokens/0000.json").status_code == 404


def test_a_post_with_media_but_no_media_store_is_refused() -> None:
    engine = Engine(workflows.standard(), store=InMemoryStore())
    app = create_app(engine, open311=Open311Config(categories=CATEGORIES), api_keys=[KEY])
    with (
        serving(app) as base,
        httpx.Client(base_url=base + "/open311/v2", timeout=ANSWERS_WITHIN) as http,
    ):
        answer = post(http, media_url="https://media.example.org/p-1.jpg")
        assert answer.status_code == 400
        assert answer.json()[0]["code"] == "media_url"
        [created] = post(http).json()
    reporter = engine.get(created["service_request_id"], viewer=DISPATCHER).reporter_id
    assert KEY not in reporter  # a key named only by itself stays out of the audit trail
