"""Who reports an Open311 POST: no reporter id holds the person's email, phone, account
or device id, over real HTTP (uvicorn on loopback, httpx). By default each request is a
reporter of its own; with a key, one person's requests share a keyed pseudonym that
the host can find again to erase them, and no two identifiers ever share one."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from closedloop import Actor, CaseNotFound, Engine
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.duties import CategoryCatalog
from closedloop.errors import ValidationError
from closedloop.testing import ManualClock
from tests.conftest import Backend
from tests.http_server import ANSWERS_WITHIN, serving
from tests.integration.test_privacy import database_text, with_retention

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from closedloop.adapters.http import (  # noqa: E402
    Open311Config,
    anonymous_reporter,
    create_app,
    pseudonymous_reporter,
)

KEY = "key-of-the-city-app"
REPORTER_KEY = b"k" * 32
EMAIL = "li.hua.private@example.org"
PHONE = "13812345678"
CATEGORIES = CategoryCatalog.from_dict(
    {"categories": [{"code": "03", "name": "道路交通"}, {"code": "03.01", "name": "路灯"}]}
)
SUPERVISOR = Actor("sup-1", roles=frozenset({"supervisor"}))


@contextmanager
def open311(engine: Engine, **config: Any) -> Iterator[Any]:
    settings = Open311Config(categories=CATEGORIES, **config)
    app = create_app(engine, open311=settings, api_keys={KEY: "city-app"})
    with (
        serving(app) as base,
        httpx.Client(base_url=base + "/open311/v2", timeout=ANSWERS_WITHIN) as client,
    ):
        yield client


def posted(http: Any, **fields: str) -> str:
    form = {"api_key": KEY, "service_code": "03.01", "lat": "31.2", "long": "121.4", **fields}
    answer = http.post("/requests.json", data=form)
    assert answer.status_code == 200, answer.text
    case_id: str = answer.json()[0]["service_request_id"]
    return case_id


def everything_shown(engine: Engine, case_id: str) -> str:
    """Every id a viewer of the case is shown: its reporter and each event's actor."""
    case = engine.get(case_id, viewer=SUPERVISOR)
    return " ".join([case.reporter_id, *(event.actor for event in engine.history(case_id))])


def test_by_default_each_request_is_a_reporter_of_its_own_named_by_nothing_personal() -> None:
    engine = Engine(with_retention(), store=InMemoryStore(), clock=ManualClock())
    with open311(engine) as http:
        first = posted(http, email=EMAIL, phone=PHONE)
        again = posted(http, email=EMAIL, phone=PHONE)
        account = posted(http, account_id="u-ACCOUNT-77", device_id="DEVICE-9")
    ids = [engine.get(c, viewer=SUPERVISOR).reporter_id for c in (first, again, account)]
    assert len(set(ids)) == 3
    assert all(i.startswith("open311:city-app:anonymous:") for i in ids)
    for case_id in (first, again, account):
        shown = everything_shown(engine, case_id)
        for personal in ("li.hua", PHONE, "ACCOUNT", "DEVICE"):
            assert personal not in shown
    contact = engine.get(first, viewer=SUPERVISOR).contact
    assert contact is not None
    assert (contact.email, contact.phone) == ("l***@example.org", "138****5678")
    assert anonymous_reporter("city-app", {"email": EMAIL}).id != ids[0]


def test_a_keyed_reporter_is_one_pseudonym_per_person_across_restarts() -> None:
    engine = Engine(with_retention(), store=InMemoryStore(), clock=ManualClock())
    reporter_of = pseudonymous_reporter(REPORTER_KEY)
    with open311(engine, reporter_of=reporter_of) as http:
        first = posted(http, email=EMAIL, phone=PHONE)
        account = posted(http, account_id="acct-9", email=EMAIL)
    with open311(engine, reporter_of=pseudonymous_reporter(bytes(REPORTER_KEY))) as http:
        again = posted(http, email=EMAIL)  # the server restarted, with the same key
    person = reporter_of("city-app", {"email": EMAIL})
    assert engine.get(first, viewer=SUPERVISOR).reporter_id == person.id
    assert engine.get(again, viewer=SUPERVISOR).reporter_id == person.id
    assert engine.get(account, viewer=SUPERVISOR).reporter_id == (
        reporter_of("city-app", {"account_id": "acct-9"}).id
    )
    assert person.id.startswith("open311:city-app:email:")
    assert len(person.id.rpartition(":")[2]) == 64
    assert "li.hua" not in everything_shown(engine, first)
    assert engine.get(first, viewer=person).contact is not None  # the reporter's own, in full
    assert engine.get(first, viewer=person).contact.email == EMAIL  # type: ignore[union-attr]
    other_key = pseudonymous_reporter(secrets.token_bytes(32))("city-app", {"email": EMAIL})
    assert other_key.id != person.id
    other_client = reporter_of("bus-app", {"email": EMAIL})
    assert other_client.id.startswith("open311:bus-app:email:")
    assert other_client.id.rpartition(":")[2] != person.id.rpartition(":")[2]


def test_long_account_ids_that_differ_at_the_end_are_two_reporters() -> None:
    engine = Engine(with_retention(), store=InMemoryStore(), clock=ManualClock())
    alice_account, bob_account = "u" * 190 + "-alice", "u" * 190 + "-bob"
    reporter_of = pseudonymous_reporter(REPORTER_KEY)
    with open311(engine, reporter_of=reporter_of) as http:
        alice_case = posted(http, account_id=alice_account, phone="13811112222")
        bob_case = posted(http, account_id=bob_account, phone="13833334444")
    alice = reporter_of("city-app", {"account_id": alice_account})
    bob = reporter_of("city-app", {"account_id": bob_account})
    assert alice.id != bob.id
    assert engine.get(alice_case, viewer=SUPERVISOR).reporter_id == alice.id
    assert engine.get(bob_case, viewer=SUPERVISOR).reporter_id == bob.id
    assert engine.get(alice_case, viewer=alice).contact.phone == "13811112222"  # type: ignore[union-attr]
    with pytest.raises(CaseNotFound):
        engine.get(bob_case, viewer=alice)
    with pytest.raises(CaseNotFound):
        engine.get(alice_case, viewer=bob)
    assert [c["case"]["id"] for c in engine.subject_report(alice.id)["cases"]] == [alice_case]


def test_the_host_finds_a_keyed_reporter_again_and_erasure_leaves_no_trace(
    backend: Backend,
) -> None:
    store = backend.fresh()
    engine = Engine(with_retention(force_erase=["supervisor"]), store=store, clock=ManualClock())
    reporter_of = pseudonymous_reporter(REPORTER_KEY)
    with open311(engine, reporter_of=reporter_of) as http:
        case_id = posted(http, email=EMAIL, phone=PHONE, description="Lamp out by the gate")
    subject = reporter_of("city-app", {"email": EMAIL}).id
    assert [c["case"]["id"] for c in engine.subject_report(subject)["cases"]] == [case_id]
    report = engine.erase_subject(subject, by=SUPERVISOR, force=True)
    assert [p.case_id for p in report.purged] == [case_id]
    assert engine.verify(case_id).ok
    assert engine.get(case_id, viewer=SUPERVISOR).contact is None
    held = database_text(backend, store)
    assert EMAIL.encode() not in held
    assert b"li.hua" not in held
    assert PHONE.encode() not in held


@pytest.mark.parametrize("key", [b"short", "k" * 32, None])
def test_a_reporter_key_that_is_not_32_bytes_is_refused(key: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        pseudonymous_reporter(key)
    assert refused.value.errors == (("reporter_key", "must be at least 32 random bytes"),)
