"""Personal data over its life, on every store: retention purges, subject access and
erasure leave no purged value anywhere in the database, every chain verifying, replay
giving the stored (redacted) case and the metrics unchanged."""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, inspect, text

from closedloop import Engine, metrics, workflows
from closedloop.adapters.memory import InMemoryStore
from closedloop.engine.audit import replay
from closedloop.engine.definition import Workflow
from closedloop.engine.delivery import RetryPolicy
from closedloop.engine.ports import CaseStore, Notification
from closedloop.errors import DeliveryFailed, ErasureRefused, PermissionDenied
from closedloop.testing import ManualClock
from tests.cast import CITIZEN, DISPATCHER, OTHER_CITIZEN, WATER
from tests.conftest import Backend

NAME = "Zhangsecret Name"
PHONE = "13912345678"
EMAIL = "secret.person@example.org"
DESCRIPTION = "Water leaking beside Secretstreet 17, since Monday"
ADDRESS = "Secretstreet 17"
MEDIA_URL = "https://media.example/secret-photo.jpg"
INFO = "Ring twice at the secret door"
COMMENT = "Secretcomment: thanks"
SECRETS = (NAME, PHONE, EMAIL, DESCRIPTION, ADDRESS, MEDIA_URL, INFO, COMMENT)
SHA = "ab" * 32
ONCE = RetryPolicy(max_attempts=1)


def with_retention(**privacy: Any) -> Workflow:
    return Workflow.from_dict(retention_data(**privacy))


def retention_data(**privacy: Any) -> dict[str, Any]:
    """The standard workflow's definition with a retention section."""
    data: dict[str, Any] = yaml.safe_load(workflows.standard_yaml())
    data["retention"] = [
        {"data": ["contact", "inputs"], "after": "30 days", "name": "contact after close"},
        {"data": ["description", "location", "media"], "after": "90 days", "from": "reported"},
    ]
    if privacy:
        data["privacy"] = privacy
    return data


class Refusing:
    """A notifier that always fails: every message becomes a dead letter."""

    def send(self, notification: Notification) -> None:
        raise DeliveryFailed(notification.channel, notification.id, "unreachable")


def closed_case(engine: Engine, clock: ManualClock) -> str:
    """A case that went the whole loop, its reporter's data in every place it reaches:
    the contact row, the description, address and media in the trail, the reporter's
    own words, the outbox (one message sent to dead letters, others pending)."""
    case = engine.report(
        CITIZEN,
        description=DESCRIPTION,
        location={"address": ADDRESS, "area": "A1", "lat": 31.2, "long": 121.4},
        contact={"name": NAME, "phone": PHONE, "email": EMAIL},
        media=[{"url": MEDIA_URL, "content_type": "image/jpeg", "sha256": SHA}],
        idempotency_key=f"report {EMAIL}",
    )
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water", reason="the water unit")
    engine.deliver()  # the assignment (with the description and address) goes dead
    engine.trigger(case.id, "accept", by=WATER)
    engine.trigger(case.id, "request_info", by=WATER, question="which door?")
    engine.trigger(case.id, "provide_info", by=CITIZEN, info=INFO)
    engine.trigger(case.id, "submit_result", by=WATER, result="pipe fixed")
    engine.trigger(case.id, "feedback", by=DISPATCHER, message="fixed")
    engine.trigger(case.id, "confirm", by=CITIZEN, resolved="yes", comment=COMMENT)
    clock.advance(hours=1)
    return case.id


def database_text(backend: Backend, store: CaseStore) -> bytes:
    """Everything the database holds, as bytes: the SQLite file after a VACUUM, every
    table of the PostgreSQL schema as text, the in-memory store's rows."""
    if backend.name == "memory":
        assert isinstance(store, InMemoryStore)
        return repr(vars(store._records)).encode() + repr(vars(store._records._outbox)).encode()
    url, schema = backend._where[id(store)]
    store.close()  # type: ignore[attr-defined]
    if backend.name == "sqlite":
        path = Path(url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection = sqlite3.connect(path)
        connection.execute("VACUUM")
        connection.close()
        return path.read_bytes()
    engine = create_engine(url)
    dumped = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names(schema=schema):
            rows = connection.execute(text(f'SELECT t::text FROM "{schema}"."{table}" t'))
            dumped += [row[0] for row in rows]
    engine.dispose()
    return "\n".join(dumped).encode()


def metric_exports(store: CaseStore, as_of: Any) -> list[str]:
    week = metrics.Period.days(date(2026, 1, 1), date(2026, 1, 31))
    return [
        metrics.to_json(metrics.compute(store, week, by="unit", as_of=as_of)),
        metrics.to_json(metrics.signals(store, week, as_of=as_of)),
        metrics.to_json(metrics.daily(store, week, as_of=as_of)),
    ]


def test_a_purge_leaves_no_purged_value_and_every_chain_verifies(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.fresh()
    clock = ManualClock()
    engine = Engine(with_retention(), store=store, clock=clock, notifier=Refusing(), retry=ONCE)
    case_id = closed_case(engine, clock)
    other = engine.report(OTHER_CITIZEN, description="a lamp is out", location={"area": "A1"})
    as_of = clock.now()
    before = metric_exports(store, as_of)
    assert engine.dead_letters()
    assert engine.subject_report(CITIZEN.id)["cases"]

    clock.advance(days=29)
    assert engine.purge().purged == ()
    clock.advance(days=2)
    dry = engine.purge(dry_run=True)
    assert [(p.case_id, p.data, p.rule) for p in dry.purged] == [
        (case_id, ("contact", "inputs"), "contact after close")
    ]
    assert engine.get(case_id, viewer=DISPATCHER).contact is not None  # a dry run erases nothing
    with caplog.at_level(logging.DEBUG):
        done = engine.purge()
    assert done.purged == dry.purged
    assert not done.dry_run
    clock.advance(days=60)
    later = engine.purge()
    assert [(p.case_id, p.data) for p in later.purged] == [
        (case_id, ("description", "location", "media")),
        (other.id, ("description", "location", "media")),
    ]
    assert engine.purge().purged == ()  # nothing is purged twice

    for found in (case_id, other.id):
        assert engine.verify(found).ok, engine.verify(found).problems
    events = engine.history(case_id)
    stored = engine.get(case_id, viewer=DISPATCHER)
    assert replay(events).model_dump(exclude={"contact"}) == stored.model_dump(exclude={"contact"})
    assert stored.description == "[purged]"
    assert stored.location.address == "[purged]"
    assert stored.contact is None
    assert stored.purged == (
        "contact",
        "description",
        "location",
        "media",
        "inputs",
    )
    purges = [e for e in events if e.trigger == "purged"]
    assert [e.payload for e in purges] == [
        {"data": ["contact", "inputs"], "rule": "contact after close"},
        {"data": ["description", "location", "media"], "rule": "retention[1]"},
    ]
    assert metric_exports(store, as_of) == before
    assert not any(secret in caplog.text for secret in SECRETS)
    everything = database_text(backend, store)
    assert [s for s in SECRETS if s.encode() in everything] == []
    assert b"[purged]" in everything


def test_subject_access_and_erasure_on_request(backend: Backend) -> None:
    store = backend.fresh()
    clock = ManualClock()
    workflow = with_retention(force_erase=["supervisor"])
    engine = Engine(workflow, store=store, clock=clock, notifier=Refusing(), retry=ONCE)
    case_id = closed_case(engine, clock)
    still_open = engine.report(
        CITIZEN, description=f"{DESCRIPTION} again", contact={"phone": PHONE}
    )

    held = engine.subject_report(CITIZEN.id)
    assert [c["case"]["id"] for c in held["cases"]] == [case_id, still_open.id]
    first = held["cases"][0]
    assert first["case"]["contact"] == {"name": NAME, "phone": PHONE, "email": EMAIL}
    assert [i["trigger"] for i in first["inputs"]] == ["report", "provide_info", "confirm"]
    assert {n["event"] for n in first["notifications"]} == {"request_info", "feedback"}

    with pytest.raises(ErasureRefused, match="still open"):
        engine.erase_subject(CITIZEN.id, by=DISPATCHER)
    with pytest.raises(PermissionDenied):
        engine.erase_subject(CITIZEN.id, by=DISPATCHER, force=True)
    supervisor = DISPATCHER.__class__("sup-1", roles={"supervisor"})
    report = engine.erase_subject(CITIZEN.id, by=supervisor, force=True)
    assert [p.case_id for p in report.purged] == [case_id, still_open.id]
    erasure = engine.history(still_open.id)[-1]
    assert (erasure.trigger, erasure.actor, erasure.role) == ("purged", "sup-1", "supervisor")
    assert erasure.payload == {
        "data": ["contact", "description", "location", "media", "inputs"],
        "rule": "erasure request",
    }
    for found in (case_id, still_open.id):
        assert engine.verify(found).ok, engine.verify(found).problems
    after = engine.subject_report(CITIZEN.id)
    assert [c["case"]["contact"] for c in after["cases"]] == [None, None]
    everything = database_text(backend, store)
    assert [s for s in SECRETS if s.encode() in everything] == []


def test_a_forced_erasure_names_the_missing_role_or_that_the_workflow_lists_none() -> None:
    engine = Engine(with_retention(), store=InMemoryStore(), clock=ManualClock())
    case = engine.report(CITIZEN, description=DESCRIPTION, contact={"phone": PHONE})
    with pytest.raises(PermissionDenied) as caught:
        engine.erase_subject(CITIZEN.id, by=DISPATCHER, force=True)
    assert str(caught.value) == (
        f"actor {DISPATCHER.id!r} may not fire 'erase_subject' on case {case.id!r}; "
        "the workflow gives it to no role"
    )


def test_a_media_rule_erases_an_attribute_the_reporter_set_from_a_media_field() -> None:
    data = retention_data()
    data["retention"] = [{"data": ["media"], "after": "1 day", "from": "reported"}]
    provide_info = next(t for t in data["transitions"] if t["name"] == "provide_info")
    provide_info["sets"] = {"photo": "media", "info": "info"}
    clock = ManualClock()
    engine = Engine(Workflow.from_dict(data), store=InMemoryStore(), clock=clock)
    case = engine.report(CITIZEN, description=DESCRIPTION)
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.01")
    engine.trigger(case.id, "dispatch", by=DISPATCHER, unit="water")
    engine.trigger(case.id, "accept", by=WATER)
    engine.trigger(case.id, "request_info", by=WATER, question="which door?")
    photo = {"url": MEDIA_URL, "content_type": "image/jpeg", "sha256": SHA}
    engine.trigger(case.id, "provide_info", by=CITIZEN, info=INFO, media=[photo])
    clock.advance(days=2)

    assert [p.data for p in engine.purge().purged] == [("media",)]
    stored = engine.get(case.id, viewer=DISPATCHER)
    assert (stored.attributes["photo"], stored.attributes["info"]) == ("[purged]", INFO)
    trail = "".join(e.model_dump_json() for e in engine.history(case.id))
    assert (MEDIA_URL in trail, INFO in trail) == (False, True)  # the words are not due
    assert engine.verify(case.id).ok


def test_a_trail_written_without_a_retention_section_is_not_sealed_and_still_verifies() -> None:
    clock = ManualClock()
    store = InMemoryStore()
    plain = Engine(workflows.standard(), store=store, clock=clock)
    case = plain.report(CITIZEN, description=DESCRIPTION, contact={"phone": PHONE})
    assert [e.sealed for e in plain.history(case.id)] == [{}]
    plain.trigger(case.id, "reject", by=DISPATCHER, reason="not ours")
    sealing = Engine(with_retention(), store=store, clock=clock)
    sealed = sealing.report(CITIZEN, description=DESCRIPTION, contact={"phone": PHONE})
    sealing.trigger(sealed.id, "reject", by=DISPATCHER, reason="not ours")
    clock.advance(days=100)
    preview = sealing.purge(dry_run=True)  # the preview tells what the run will keep
    assert preview.unsealed == (case.id,)
    report = sealing.purge()
    assert report.unsealed == (case.id,)  # its description is inside the old hashes
    assert preview.purged == report.purged
    assert {p.case_id for p in report.purged} == {case.id, sealed.id}
    assert sealing.verify(case.id).ok
    assert sealing.get(case.id, viewer=DISPATCHER).contact is None


def test_a_changed_personal_value_fails_verification() -> None:
    store = InMemoryStore()
    engine = Engine(with_retention(), store=store, clock=ManualClock())
    case = engine.report(CITIZEN, description=DESCRIPTION)
    first = store._records.events[case.id][0]
    changes = {**first.changes, "description": "something else"}
    store._records.events[case.id][0] = first.model_copy(update={"changes": changes})
    problems = engine.verify(case.id).problems
    assert "event 1: the personal field changes/description does not match its digest" in problems


def test_retention_rules_are_checked_at_load() -> None:
    from closedloop.errors import InvalidWorkflow

    data = workflows.standard().model_dump(by_alias=True, exclude_defaults=True)
    data["retention"] = [{"data": ["contact"], "after": "5 working days"}]
    data["privacy"] = {"force_erase": ["nobody"]}
    with pytest.raises(InvalidWorkflow) as caught:
        Workflow.from_dict(data)
    assert list(caught.value.problems) == [
        "privacy.force_erase[0]: unknown role 'nobody'",
        "retention[0].after: is counted in natural time; write days, not working days",
    ]


def test_a_refused_retention_rule_is_one_problem_with_an_example_it_would_take() -> None:
    from closedloop.errors import InvalidWorkflow

    data = workflows.standard().model_dump(by_alias=True, exclude_defaults=True)
    data["retention"] = [
        {"data": ["phone"], "after": "30 days"},
        {"data": ["contact"], "after": "6 months"},
    ]
    with pytest.raises(InvalidWorkflow) as caught:
        Workflow.from_dict(data)
    assert list(caught.value.problems) == [
        "retention[0].data[0]: Input should be 'contact', 'description', 'location', "
        "'media' or 'inputs'",
        "retention[1].after: '6 months' is not a duration; write '<number> "
        "<minutes|hours|days>' in natural time, for example '180 days'",
    ]
    data["retention"] = [{"data": [], "after": "180 days"}]
    with pytest.raises(InvalidWorkflow) as empty:
        Workflow.from_dict(data)
    assert list(empty.value.problems) == [
        "retention[0].data: Tuple should have at least 1 item after validation, not 0"
    ]
    data["retention"] = [{"data": ["contact"], "after": "180 days"}]
    assert Workflow.from_dict(data).retention is not None


def test_the_worker_purges_on_its_schedule() -> None:
    from closedloop.engine.worker import MIN_PAUSE, Worker

    clock = ManualClock()
    engine = Engine(with_retention(), store=InMemoryStore(), clock=clock)
    case = engine.report(CITIZEN, description=DESCRIPTION, contact={"phone": PHONE})
    engine.trigger(case.id, "reject", by=DISPATCHER, reason="not ours")
    worker = Worker(engine, purge_every=timedelta(days=1), deliver=False)
    first = worker.run_once().purge  # the first round purges: nothing is due yet
    assert first is not None
    assert first.purged == ()
    clock.advance(days=31)
    assert worker.pause() == MIN_PAUSE  # the purge is due
    purged = worker.run_once().purge
    assert purged is not None
    assert [p.case_id for p in purged.purged] == [case.id]
    assert worker.run_once().purge is None  # not again until a day has passed
    assert engine.get(case.id, viewer=DISPATCHER).contact is None


def test_the_command_line_lists_what_is_due_then_purges_it(tmp_path: Path) -> None:
    from closedloop.adapters.sqlalchemy import SQLStore
    from tests.integration.cli_runs import run, run_all

    data = retention_data()
    (tmp_path / "workflow.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    workflow = Workflow.from_dict(data)
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    clock = ManualClock(datetime.now(UTC) - timedelta(days=40))
    engine = Engine(workflow, store=store, clock=clock, id_factory=lambda: "case-1")
    case = engine.report(CITIZEN, description=DESCRIPTION, contact={"phone": PHONE})
    engine.trigger(case.id, "reject", by=DISPATCHER, reason="not ours")
    store.close()

    args = ("privacy", "purge", "cases.db", "--workflow", "workflow.yaml")
    dry, standard = run_all(tmp_path, (*args, "--dry-run"), args[:3])
    assert (dry.returncode, dry.stdout, dry.stderr) == (
        0,
        "case-1  contact,inputs  contact after close\n1 due\n",
        "",
    )
    # Without --workflow the standard workflow, which has no rules, makes nothing due.
    assert (standard.returncode, standard.stdout, standard.stderr) == (
        0,
        "0 purged\n",
        "workflow 'standard' has no retention rules: nothing is ever due "
        "(give the one with them: --workflow FILE)\n",
    )
    done = run(tmp_path, *args)
    assert (done.returncode, done.stdout) == (
        0,
        "case-1  contact,inputs  contact after close\n1 purged\n",
    )


def test_rules_from_the_close_purge_final_cases_of_their_channel_only() -> None:
    data = retention_data()
    data["retention"] = [{"data": ["contact"], "after": "10 days", "channels": ["hotline"]}]
    clock = ManualClock()
    engine = Engine(Workflow.from_dict(data), store=InMemoryStore(), clock=clock)
    cases = [
        engine.report(CITIZEN, description="one", contact={"phone": PHONE}, channel=channel)
        for channel in ("hotline", "hotline", "app")
    ]
    for case in (cases[0], cases[2]):
        engine.trigger(case.id, "reject", by=DISPATCHER, reason="not ours")
    clock.advance(days=10)
    assert [p.case_id for p in engine.purge().purged] == [cases[0].id]
    assert [engine.get(c.id, viewer=DISPATCHER).contact is None for c in cases] == [
        True,
        False,
        False,
    ]


def test_the_worker_command_purges_on_a_schedule_and_refuses_without_rules(
    tmp_path: Path,
) -> None:
    from closedloop.adapters.sqlalchemy import SQLStore
    from tests.integration.cli_runs import assert_one_line_error, run
    from tests.integration.test_cli_worker import start_worker, stopped

    data = retention_data()
    (tmp_path / "workflow.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    db = tmp_path / "cases.db"
    store = SQLStore(f"sqlite:///{db}")
    clock = ManualClock(datetime.now(UTC) - timedelta(days=40))
    engine = Engine(Workflow.from_dict(data), store=store, clock=clock)
    case = engine.report(CITIZEN, description=DESCRIPTION, contact={"phone": PHONE})
    engine.trigger(case.id, "reject", by=DISPATCHER, reason="not ours")
    store.close()

    refused = run(tmp_path, "worker", "cases.db", "--purge-every", "1")
    assert_one_line_error(
        refused, "--purge-every needs retention rules, and workflow 'standard' has none"
    )

    worker = start_worker(db, "--workflow", "workflow.yaml", "--purge-every", "24", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while True:  # the first round purges what is due, then not again for a day
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        with sqlite3.connect(db) as connection:
            left = connection.execute("SELECT count(*) FROM closedloop_reporter_contacts")
            if left.fetchone()[0] == 0:
                break
        assert time.monotonic() < deadline, "nothing purged within a minute"
        time.sleep(0.2)
    err = stopped(worker)
    assert worker.returncode == 0, err
    assert err.rstrip().endswith("0 notifications delivered, 1 case purged"), err


def test_the_sqlite_search_index_keeps_no_fragment_of_a_purged_description(
    tmp_path: Path,
) -> None:
    # The full-text index stores trigrams, never the whole text, so a scan of the file
    # for the description cannot see whether the index still knows it: ask the index
    # (its vocabulary) which trigrams it holds.
    from closedloop.adapters.sqlalchemy import SQLStore

    path = tmp_path / "cases.db"
    store = SQLStore(f"sqlite:///{path}")
    clock = ManualClock()
    engine = Engine(with_retention(), store=store, clock=clock)
    case = engine.report(CITIZEN, description=DESCRIPTION, location={"address": ADDRESS})
    engine.trigger(case.id, "reject", by=DISPATCHER, reason="not ours")
    engine.report(OTHER_CITIZEN, description="a lamp is out", location={"area": "A1"})

    def trigrams(text: str) -> set[str]:
        folded = text.lower()
        return {folded[i : i + 3] for i in range(len(folded) - 2)}

    def indexed() -> tuple[set[str], set[str]]:
        """The trigrams the index holds, and those of the text it should hold now."""
        with sqlite3.connect(path) as connection:
            connection.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab "
                "USING fts5vocab(main, closedloop_case_text, 'row')"
            )
            held = {row[0] for row in connection.execute("SELECT term FROM temp.vocab")}
            texts = connection.execute("SELECT text FROM closedloop_case_text").fetchall()
        connection.close()
        return held, set().union(*(trigrams(t) for (t,) in texts))

    private = trigrams(DESCRIPTION) | trigrams(ADDRESS)
    held, current = indexed()
    assert private <= held  # before: the index holds every trigram of the report
    clock.advance(days=91)
    purged = {(p.case_id, kind) for p in engine.purge().purged for kind in p.data}
    assert (case.id, "description") in purged
    store.close()
    held, current = indexed()
    assert held == current  # nothing but the text the cases hold now
    assert private - current, "the purged text shares every trigram with what is left"
    assert not (private - current) & held
