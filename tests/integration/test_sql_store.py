"""What only the SQL store has: its SQLite set-up, readable rows, wrapped driver errors."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc

from closedloop import Engine, workflows
from closedloop.adapters.sqlalchemy import SQLStore
from closedloop.adapters.sqlalchemy.failures import Failure, classify, retrying
from closedloop.engine.case_query import CaseFilter
from closedloop.engine.ports import IdempotencyRecord
from closedloop.errors import StoreError, StoreUnavailable, ValidationError
from closedloop.testing import ManualClock
from closedloop.testing.contract.base import T0, add, deadline, read
from tests.cast import CITIZEN, DISPATCHER
from tests.conftest import new_schema, postgres_url


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    store.close()


@pytest.mark.parametrize("mode", ["FUL", "OFF", "full", 0, 2])
def test_a_synchronous_mode_other_than_full_or_normal_is_refused_before_the_file_is_made(
    tmp_path: Path, mode: Any
) -> None:
    path = tmp_path / "cases.db"
    with pytest.raises(ValidationError) as refused:
        SQLStore(f"sqlite:///{path}", synchronous=mode)
    assert refused.value.errors == (("synchronous", f'must be "FULL" or "NORMAL", not {mode!r}'),)
    assert not path.exists()


def test_normal_is_the_other_synchronous_mode(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}", synchronous="NORMAL")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    store.close()


def test_rows_are_plain_columns_and_json_an_auditor_can_query(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    store = SQLStore(url)
    add(store, "c1", lead_unit="water", deadline=deadline(T0, warning="red"))
    store.close()
    engine = create_engine(url)  # plain SQLAlchemy, none of the store's code
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT state, lead_unit, warning_level, due_at, body FROM closedloop_cases "
                "WHERE json_extract(body, '$.location.area') = '310101'"
            )
        ).one()
        phone = connection.execute(
            text("SELECT phone FROM closedloop_reporter_contacts WHERE case_id = 'c1'")
        ).scalar()
        event = connection.execute(text("SELECT trigger, hash FROM closedloop_case_events")).one()
    engine.dispose()
    assert (row.state, row.lead_unit, row.warning_level) == ("reported", "water", "red")
    assert row.due_at.startswith("2026-01-05 09:00:00")  # UTC text, sortable
    assert json.loads(row.body)["id"] == "c1"
    assert "13800000000" not in row.body
    assert phone == "13800000000"
    assert event.trigger == "report"
    assert len(event.hash) == 64


def test_statement_logging_never_shows_contact_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    engine = Engine(workflows.standard(), store=store)
    contact = {"name": "Zhang Sanfeng", "phone": "13912345678", "email": "zsf@example.org"}
    case = engine.report(CITIZEN, description="Leak", location="1 Elm St", contact=contact)
    engine.get(case.id, viewer=DISPATCHER)  # reads the contact back
    store.close()

    logged = [(record.getMessage(), repr(record.args)) for record in caplog.records]
    statements = [message for message, _ in logged if "closedloop_reporter_contacts" in message]
    assert any(
        message.startswith("INSERT INTO closedloop_reporter_contacts") for message in statements
    )
    assert any("parameters hidden" in message for message, _ in logged)
    for secret in contact.values():
        assert not any(secret in message or secret in args for message, args in logged)


def test_unreachable_databases_raise_store_unavailable(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailable):
        SQLStore(f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=2")
    with pytest.raises(StoreUnavailable):
        SQLStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'cases.db'}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "not an in-memory database"),
        ("sqlite:///:memory:", "not an in-memory database"),
        ("mysql://localhost/x", "unsupported database 'mysql'"),
        ("no url at all", "not a database URL"),
    ],
)
def test_unusable_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        SQLStore(url)


def test_a_schema_is_refused_on_sqlite(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="only available on PostgreSQL"):
        SQLStore(f"sqlite:///{tmp_path / 'cases.db'}", schema="cases")


def test_driver_errors_reach_callers_as_store_errors(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    add(store, "c1")
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE closedloop_reporter_contacts"))
    with pytest.raises(StoreError) as raised:
        read(store, lambda tx: tx.get_case("c1"))
    assert isinstance(raised.value.__cause__, sa_exc.SQLAlchemyError)
    store.close()


def test_a_read_only_transaction_cannot_write(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    case, _ = add(store, "c1")
    with store.transaction(read_only=True) as tx:
        assert tx.get_case("c1") == case
        with pytest.raises(StoreError, match="read-only"):
            tx.put_idempotency(IdempotencyRecord(key="k", fingerprint="f", case_id="c1", version=1))
    store.close()


def _postgres_error(sqlstate: str) -> sa_exc.OperationalError:
    class Driver(Exception):
        pass

    orig = Driver("simulated")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    return sa_exc.OperationalError("UPDATE ...", {}, orig)


def test_serialization_failures_and_deadlocks_are_retried_a_bounded_number_of_times() -> None:
    assert classify(_postgres_error("40001")) is Failure.CONFLICT
    assert classify(_postgres_error("40P01")) is Failure.CONFLICT
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _postgres_error("40001")
        return "done"

    assert retrying(flaky, attempts=5) == "done"
    assert len(calls) == 3
    calls.clear()

    def hopeless() -> str:
        calls.append(1)
        raise _postgres_error("40P01")

    with pytest.raises(sa_exc.OperationalError):
        retrying(hopeless, attempts=4)
    assert len(calls) == 4


@pytest.mark.external_service
def test_postgres_tables_live_in_the_given_schema() -> None:
    schema = new_schema()
    store = SQLStore(postgres_url(), schema=schema)
    add(store, "c1")
    with store.engine.connect() as connection:
        tables = connection.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": schema},
        ).scalars()
        assert "closedloop_cases" in set(tables)
        count = connection.exec_driver_sql(f'SELECT count(*) FROM "{schema}".closedloop_cases')
        assert count.scalar() == 1
    store.close()


def test_a_write_that_waits_past_the_busy_timeout_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "cases.db"
    store = SQLStore(f"sqlite:///{path}", busy_timeout=0.2)
    engine = Engine(workflows.standard(), store=store)
    case = engine.report(CITIZEN, description="Pipe burst", location={"area": "310101"})
    other = sqlite3.connect(path)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock throughout
    try:
        with pytest.raises(StoreError, match=r"lock|busy"):
            engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    finally:
        other.rollback()
        other.close()
    engine.trigger(case.id, "classify", by=DISPATCHER, category="01.02", urgency="normal")
    assert [e.trigger for e in engine.history(case.id)] == ["report", "classify"]
    store.close()


def test_a_case_a_query_read_before_is_its_stored_body_and_not_what_a_reader_changed(
    tmp_path: Path,
) -> None:
    # Pages of cases are built from bodies read before when the stored text is the same;
    # what one reader does to its copy, and a body changed without a new version (a
    # repair by hand), must not show in the next read.
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    store = SQLStore(url)
    add(store, "c1", lead_unit="water", counters={"returns": 1}, attributes={"tags": ["a"]})
    first = store.select_cases(CaseFilter()).cases[0]
    first.attributes["tags"].append("b")
    first.counters["returns"] = 9
    again = store.select_cases(CaseFilter()).cases[0]
    assert (again.attributes, again.counters) == ({"tags": ["a"]}, {"returns": 1})
    assert again == read(store, lambda tx: tx.get_case("c1"))
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE closedloop_cases SET body = json_set(body, '$.description', 'fixed')")
        )
    engine.dispose()
    assert store.select_cases(CaseFilter()).cases[0].description == "fixed"
    store.close()


def test_a_tick_asks_should_stop_outside_its_transactions_so_the_host_may_write(
    tmp_path: Path,
) -> None:
    # A host that records a heartbeat through the engine each time the tick asks: were
    # it asked while a batch held SQLite's write lock, the heartbeat would wait out the
    # busy timeout and fail.
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}", busy_timeout=0.5)
    clock = ManualClock(T0)
    engine = Engine(workflows.standard(), store=store, clock=clock)
    reported = [engine.report(CITIZEN, description=f"Pipe burst {n}").id for n in range(4)]
    clock.advance(hours=3)  # each case's warning and breach are due
    heartbeats: list[str] = []

    def heartbeat() -> bool:
        heartbeats.append(engine.report(CITIZEN, description="heartbeat").id)
        return False

    report = engine.tick(batch=2, should_stop=heartbeat)
    assert report.applied == 8  # each case's warning and breach
    assert len(heartbeats) == 3  # before each of the three claims (the last finds none)
    for case_id in reported:
        assert [e.trigger for e in engine.history(case_id)][1:] == ["warn", "breach"]
    store.close()


class _CommitFailsOnceAfterClaiming:
    """A SQL store whose first transaction that claims a next batch fails to commit."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self.failed = False

    def transaction(self, *, read_only: bool = False) -> Any:
        tx = self._store.transaction(read_only=read_only)
        claim_due = tx.claim_due

        def claiming(*args: Any, **kwargs: Any) -> Any:
            claims = claim_due(*args, **kwargs)
            if claims and not self.failed:
                self.failed = True
                tx.commit = self._refuse  # type: ignore[method-assign]
            return claims

        tx.claim_due = claiming  # type: ignore[method-assign]
        return tx

    @staticmethod
    def _refuse() -> None:
        raise StoreUnavailable("the commit failed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_batch_whose_commit_fails_after_claiming_the_next_is_applied_again_once(
    tmp_path: Path,
) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'cases.db'}")
    clock = ManualClock(T0)
    engine = Engine(workflows.standard(), store=store, clock=clock)
    reported = [engine.report(CITIZEN, description=f"Pipe burst {n}").id for n in range(6)]
    clock.advance(hours=3)  # each case's warning and breach are due
    failing = _CommitFailsOnceAfterClaiming(store)
    ticking = Engine(workflows.standard(), store=failing, clock=clock)  # type: ignore[arg-type]
    assert ticking.tick(batch=2).applied == 12
    assert failing.failed
    assert engine.tick().applied == 0  # no timer left, none leased
    for case_id in reported:
        assert [e.trigger for e in engine.history(case_id)] == ["report", "warn", "breach"]
        assert engine.verify(case_id).ok
    store.close()
